"""The model on this box: one exported .onnx file opened on a device (`classifier`, `devices`), its inputs in
the memory the device reads fastest (`pinned`, `binding`), its logits turned into classes (`scores`), the same
file in another runtime (`backends`) and the one way the commands load it (`load`)."""

"""Export: checkpoint -> .onnx (fp32 / fp16 / int8) with a parity gate (`onnx_export`), and `verify`.

`verify` checks a model on its own without torch; `onnx_export` and `convert` need the `[train]` extra.
"""

"""The live run (`webcam`): `webcam` wires sources, model and sinks and returns the summary; `loop` classifies
the newest frame of every source in one batch each tick through the `stages` (waker, preprocessing, inference
thread); `events` makes each frame's event and overlay; `feeds` is one source inside the loop; `status` the
counters any thread may read; `cores` the threads the sources leave the model."""

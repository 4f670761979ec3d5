"""Capture and decoding in worker processes (`webcam --capture processes`): the shared-memory ring (ring.py),
the worker (worker.py) and the pool the loop reads (pool.py)."""

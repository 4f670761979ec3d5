"""Recorded videos (`annotate`): `options`, `jobs` (which videos, their names, truths and whether they are up
to date), `decode` (one decode thread, preprocessing threads, batches in order), `recorder` (one video's
outputs while it is classified, or read back), `segments` (runs, merging, scores), `truth`, and `outputs/`,
one module per file format in `OUTPUTS`; `annotate` runs them all."""

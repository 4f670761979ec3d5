"""Recorded videos (`annotate`): `options`, `jobs` (which videos, their names and truths), `record` (the
completion record that says a video is up to date), `ownership` (which files are ours to replace, and
replacing them), `decode` (one decode thread, preprocessing threads, batches in order), `recorder` (one video's
outputs while it is classified, or read back), `segments` (runs, merging, tallies), `scoring` (segments scored
on the truth's frames), `truth`, `summary` (summary.json merged per video), and `outputs/`, one module per file
format in `OUTPUTS`; `annotate` runs them all."""

#!/usr/bin/env bash
# The whole flow on built-in synthetic data, sized for a few minutes on two CPU cores:
# synth -> train -> evaluate -> export (fp32 + int8, each behind the parity gate) -> verify.
set -euo pipefail
DEMO="${DEMO:-demo}"
BIN="${BIN:-.venv/bin}"
MGC="$BIN/mgc-edge"
EPOCHS="${EPOCHS:-10}"
SIZE="${SIZE:-64}"

start=$(date +%s)
echo "== 1/4 synthetic iMiGUE-shaped data -> $DEMO/data"
"$MGC" synth "$DEMO/data" --scale "${SCALE:-0.03}" --seed 0 --force >/dev/null

echo "== 2/4 train alexnet_bn (the seed's AlexNet with batch norm) at ${SIZE}x${SIZE}, $EPOCHS epochs, clip-grouped split"
"$MGC" train "$DEMO/data/training" --run-dir "$DEMO/run" --force --size "$SIZE" --epochs "$EPOCHS" \
  --class-names imigue --workers 1 >/dev/null

echo "== 3/4 evaluate the best checkpoint on the held-out test clips"
"$MGC" evaluate "$DEMO/run" --workers 1 >/dev/null

if "$MGC" export --help >/dev/null 2>&1; then
  echo "== 4/4 export fp32 + int8 with the parity gate, then verify on the test split"
  "$MGC" export "$DEMO/run" --precision fp32 --precision int8 --force
  "$MGC" verify "$DEMO/run/model.int8.onnx" --checkpoint "$DEMO/run/best.pt"
fi
echo "Done in $(( $(date +%s) - start ))s. Run directory: $DEMO/run (report.json, curves.png, confusion.png)"

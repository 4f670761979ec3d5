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

echo "== 4/4 export fp32 + int8, each behind the parity gate, then verify on the test split"
# Exit 1 from export means a model failed its gate and was kept as *.FAILED.onnx: that is the gate doing its
# job on a small, weakly trained model, so the demo reports it instead of stopping.
gate=0
"$MGC" export "$DEMO/run" --precision fp32 --precision int8 --calib-images 1024 --force >/dev/null || gate=$?
[ "$gate" -le 1 ] || exit "$gate"
for model in "$DEMO/run/model.onnx" "$DEMO/run/model.int8.onnx"; do
  [ -f "$model" ] && "$MGC" verify "$model" --checkpoint "$DEMO/run" >/dev/null
done
[ "$gate" -eq 0 ] || echo "note: a model failed its parity gate and was not put in place (see the table above)."
echo "Done in $(( $(date +%s) - start ))s. Run directory: $DEMO/run (report.json, curves.png, confusion.png)"

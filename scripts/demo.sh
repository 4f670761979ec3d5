#!/usr/bin/env bash
# The whole flow on built-in synthetic data, sized for at most 6 minutes on two CPU cores (about a minute on
# a GPU): synth -> train (ending in the test report) -> export (fp32 + int8 on a CPU, fp32 + fp16 where ONNX
# Runtime runs on a GPU; each behind the parity gate) -> verify -> live loop + predict + annotate.
#
# The data: iMiGUE's 32 classes with its long tail, clips of near-duplicate frames, every clip its own
# person, scene and camera; the class is shown only by the gesture. `--difficulty easy` narrows how much
# placement, size and clutter vary and draws the arms with a clear edge, so that the seed's AlexNet, trained
# from scratch, learns the gesture in a few CPU minutes; `--max-frames 3` spends the frames on more, shorter
# clips (more people per class) and `--min-clips 10` gives the rarest classes enough people to learn from.
# The training recipe (measured in benchmarks/RESULTS.md, 5 epochs at 96x96): no dropout (with AlexNet's 0.5,
# 5 epochs reach 61 % top-1 instead of 72 %), class-balanced sampling (macro-F1 0.25 -> 0.39: without it the
# rare classes are never predicted) and lr 0.01 with batch 64 (macro-F1 0.46).
# Every setting can be overridden from the environment, e.g. `EPOCHS=12 make demo`.
# At the end the run's figures go to docs/figures.json and the README's figure blocks (scripts/demo_figures.py);
# RECORD_FIGURES=0 leaves both as they are.
set -euo pipefail
DEMO="${DEMO:-demo}"
BIN="${BIN:-.venv/bin}"
MGC="$BIN/mgc-edge"
SCALE="${SCALE:-0.06}"
MAX_FRAMES="${MAX_FRAMES:-3}"
MIN_CLIPS="${MIN_CLIPS:-10}"
DIFFICULTY="${DIFFICULTY:-easy}"
SIZE="${SIZE:-96}"
RESIZE="${RESIZE:-center_crop}"
EPOCHS="${EPOCHS:-5}"
LR="${LR:-0.01}"
BATCH="${BATCH:-64}"
DROPOUT="${DROPOUT:-0}"
BALANCE="${BALANCE:-sampler}"
RECORD_FIGURES="${RECORD_FIGURES:-1}"

# The precision the runtime should get: int8 on a CPU; on a GPU fp16, since int8 runs slower than fp32 there
# (QDQ through ONNX Runtime's CUDA provider, benchmarks/RESULTS.md).
if [ "$("$BIN/python" -c 'from mgc_edge.runtime.model.devices import gpu_runtime_available as g; print(int(g()))' 2>/dev/null)" = 1 ]; then
  RUNTIME_PRECISION="${RUNTIME_PRECISION:-fp16}"; DEVICE="${DEVICE:-cuda}"
else
  RUNTIME_PRECISION="${RUNTIME_PRECISION:-int8}"; DEVICE="${DEVICE:-cpu}"
fi

start=$(date +%s)
mark=$start
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || true)  # a shared machine's seconds say so
steps=""
took() {  # seconds since the previous step, for benchmarks/RESULTS.md and docs/figures.json
  local now
  now=$(date +%s)
  echo "   ($(( now - mark ))s)"
  steps="$steps${steps:+,}$1=$(( now - mark ))"
  mark=$now
}

echo "== 1/4 synthetic iMiGUE-shaped data ($DIFFICULTY, scale $SCALE, clips of at most $MAX_FRAMES frames) -> $DEMO/data"
"$MGC" synth "$DEMO/data" --scale "$SCALE" --difficulty "$DIFFICULTY" --max-frames "$MAX_FRAMES" --min-clips "$MIN_CLIPS" \
  --video-seconds 90 --segment-seconds 1.5 3 --seed 0 --force >/dev/null
took synth

echo "== 2/4 train alexnet_bn from scratch (the seed's AlexNet with batch norm) at ${SIZE}x${SIZE} ($RESIZE), $EPOCHS epochs, clip-grouped split"
# train ends by evaluating its best epoch once on the held-out test clips: the report `mgc-edge evaluate` writes.
"$MGC" train "$DEMO/data/training" --run-dir "$DEMO/run" --force --size "$SIZE" --resize "$RESIZE" \
  --epochs "$EPOCHS" --lr "$LR" --batch-size "$BATCH" --dropout "$DROPOUT" --balance "$BALANCE" \
  --class-names imigue --cache-dir "$DEMO/cache" >/dev/null
took train

echo "== 3/4 export fp32 + $RUNTIME_PRECISION, each behind the parity gate on the test split ($DEVICE); verify the $RUNTIME_PRECISION model, also in OpenVINO and OpenCV"
# Exit 1 from export means a model failed its gate and was kept as *.FAILED.onnx: the demo reports it
# instead of stopping, so that the rest of the flow still shows.
gate=0
"$MGC" export "$DEMO/run" --precision fp32 --precision "$RUNTIME_PRECISION" --calib-images 1024 --device "$DEVICE" \
  --force >/dev/null || gate=$?
[ "$gate" -le 1 ] || exit "$gate"
model="$DEMO/run/model.$RUNTIME_PRECISION.onnx"
if [ -f "$model" ]; then
  "$MGC" verify "$model" --checkpoint "$DEMO/run" --device "$DEVICE" --force >/dev/null
  # The same file in the other runtimes that read it, against the stored PyTorch reference (no torch run).
  rm -rf "$DEMO/portability"
  mkdir -p "$DEMO/portability"
  for runtime in openvino opencv; do
    report="$DEMO/portability/$RUNTIME_PRECISION.$runtime.json"
    rc=0
    "$MGC" verify "$model" --checkpoint "$DEMO/run" --runtime "$runtime" --json "$report" >/dev/null \
      2>"$DEMO/portability/$runtime.log" || rc=$?
    if [ -f "$report" ]; then
      "$BIN/python" -c 'import json, sys; r = json.load(open(sys.argv[1]))
print("   in %s %s: top-1 agreement with PyTorch %.1f %%, accuracy %.1f %% (PyTorch %.1f %%): %s" % (r["runtime"],
      r["runtime_version"], 100 * r["agreement"], 100 * r["acc_model"], 100 * r["acc_checkpoint"],
      "pass" if r["passed"] else "FAIL"))' "$report"
    else
      echo "   $runtime: not checked ($(grep -m1 '^error:' "$DEMO/portability/$runtime.log" || echo "exit code $rc"))"
    fi
  done
else
  echo "note: the $RUNTIME_PRECISION model failed its parity gate and was not put in place (see the table above)."
  model="$DEMO/run/model.onnx"
fi
took export_verify

echo "== 4/4 the live loop over the demo video (its true labels in $DEMO/data/demo.csv), predict, and annotate"
# The edge runtime: no torch needed from here on; the $RUNTIME_PRECISION model where it passed its gate.
"$MGC" webcam "$model" --source "$DEMO/data/demo.mp4" --display off \
  --save "$DEMO/webcam.mp4" --jsonl "$DEMO/webcam.jsonl" --force 2>/dev/null
"$BIN/python" -m mgc_edge.runtime.agreement "$DEMO/webcam.jsonl" "$DEMO/data/demo.csv"
mapfile -t TEST < <(awk -F, -v root="$DEMO/data/training" 'NR > 1 && $4 == "test" {print root "/" $1}' "$DEMO/run/split.csv")
"$MGC" predict "$model" "${TEST[@]}" -o "$DEMO/predictions.csv" --clip --force >/dev/null 2>&1
echo "   predictions for the ${#TEST[@]} test images: $DEMO/predictions.csv; annotated video: $DEMO/webcam.mp4"
# The recording as a researcher gets it: every frame classified in batches, gesture segments, an ELAN tier,
# and how well they agree with the video's known labels (annotate's closing JSON line).
"$MGC" annotate "$model" "$DEMO/data/demo.mp4" --out "$DEMO/annotations" --truth "$DEMO/data/demo.csv" --plot \
  --force 2>/dev/null | tail -n 1 | "$BIN/python" -c '
import json, sys
r = json.load(sys.stdin)
print("   annotate: %d frames; frame accuracy %.1f %%, macro-F1 %.3f; segment F1 %.2f (precision %.2f, recall %.2f)"
      % (r["frames"], 100 * r["frame_accuracy"], r["frame_macro_f1"], r["segment_f1"], r["segment_precision"],
         r["segment_recall"]))
print("   " + r["out"] + "/demo.frames.csv, .segments.csv, .eaf (opens in ELAN), .timeline.png")'
took runtime

seconds=$(( $(date +%s) - start ))
if [ "$RECORD_FIGURES" = 1 ]; then
  "$BIN/python" scripts/demo_figures.py "$DEMO" --seconds "$seconds" --steps "$steps" --device "$DEVICE" \
    --precision "$RUNTIME_PRECISION" --load-at-start "$load_at_start" ||
    echo "note: the figures were not recorded (said above); the demo itself ran."
fi
echo "Done in ${seconds}s. Run directory: $DEMO/run (report.json, curves.png, confusion.png);"
echo "  \`$MGC evaluate $DEMO/run --split val\` scores another split the same way."
echo "Watch the live view in a browser: $MGC webcam $model --source $DEMO/data/demo.mp4 --realtime --display off --serve 8080"
echo "  then open http://127.0.0.1:8080/"

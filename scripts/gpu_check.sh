#!/usr/bin/env bash
# The GPU path of genlab in one call: prints one JSON line per part and writes reports/gpu/<part>.json.
#
#   scripts/gpu_check.sh [--dry-run] [--out DIR] [--parts "tests lm lm_compile dcgan vae precision"]
#                        [--lm-minutes 4] [--dcgan-minutes 1]
#
# Parts (each a command anyone can rerun; its full output goes to <out>/logs/<part>.log):
#   tests      pytest -m gpu: 16-mixed and bf16-mixed on every model's shrunk config, precision auto on CUDA,
#              DDP with one GPU, `genlab generate` on CUDA with the KV cache equal to no cache
#   lm         scripts/bench_lm.py on configs/lm_shakespeare_gpu.yaml to its end (5000 steps, capped by
#              --lm-minutes): steps, wall, tokens/s, MFU against the measured matmul peak, validation loss
#              (anchor: nanoGPT's shakespeare-char reaches 1.4697 in about 3 minutes on an A100)
#   lm_compile the same config with model.init_args.compile=true for 1000 steps: tokens/s against the lm part's,
#              and first_step_s, the compilation's cost (torch.compile stays off by default until this pays)
#   dcgan      scripts/bench_dcgan.py, the default DCGAN for --dcgan-minutes under 16-mixed and under bf16-mixed:
#              images/s, FID / floor, class shares (parts dcgan_16-mixed, dcgan_bf16-mixed)
#   vae        scripts/bench_vae.py, the default VAE's 30 epochs: images/s, test neg ELBO
#   precision  scripts/bench_precision.py: seconds per step of every config under each precision
# Budget on one modern GPU: about 10 minutes with the defaults (an estimate until it has run on one; --parts
# "tests lm dcgan vae" and --lm-minutes 3 should keep it under 8).
#
# --dry-run: the same parts on the CPU with tiny sizes (a few minutes on 2 cores), written to a temporary folder
# (or --out), never to reports/; CI runs it (tests/test_gpu_check.py) so that this script cannot rot.
# Data: MNIST and tinyshakespeare under $GENLAB_DATA_DIR (or ./data). The exit status is 1 if any part failed.
# Python: $PYTHON, else `python`.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

PY=${PYTHON:-python}
DRY=0
OUT=""
PARTS="tests lm lm_compile dcgan vae precision"
LM_MINUTES=4
DCGAN_MINUTES=1
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY=1 ;;
        --out) OUT=${2:?--out needs a folder}; shift ;;
        --parts) PARTS=${2:?--parts needs a list, e.g. \"lm vae\"}; shift ;;
        --lm-minutes) LM_MINUTES=${2:?--lm-minutes needs a number}; shift ;;
        --dcgan-minutes) DCGAN_MINUTES=${2:?--dcgan-minutes needs a number}; shift ;;
        -h|--help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "gpu_check.sh: unknown option '$1' (see scripts/gpu_check.sh --help)" >&2; exit 2 ;;
    esac
    shift
done
for part in $PARTS; do
    case "$part" in tests|lm|lm_compile|dcgan|vae|precision) ;;
        *) echo "gpu_check.sh: unknown part '$part' (parts: tests lm lm_compile dcgan vae precision)" >&2; exit 2 ;;
    esac
done

if [ "$DRY" = 1 ]; then
    OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/genlab-gpu-check.XXXXXX")}
else
    OUT=${OUT:-reports/gpu}
    if ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
        echo "gpu_check.sh: no CUDA GPU here (torch.cuda.is_available() is False); run with --dry-run to check the steps on the CPU" >&2
        exit 2
    fi
fi
RUNS=$OUT/runs
mkdir -p "$OUT/logs" "$RUNS" || exit 2
export WANDB_MODE=${WANDB_MODE:-offline} WANDB_SILENT=true WANDB_DIR=${WANDB_DIR:-$RUNS} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
FAILED=0

# emit PART RC WALL_MS EXTRA_JSON: the part's figures (the last JSON line of its log, or pytest's tally) with the
# machine's cpu, cpu_flags and gpu, printed as one line and written to $OUT/PART.json
emit() {
    "$PY" - "$1" "$2" "$3" "$4" "$OUT" "$DRY" <<'PYEOF'
import json, re, sys
from pathlib import Path
from genlab.hardware import hardware_fields

part, rc, wall_ms, extra, out, dry = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], Path(sys.argv[5]), sys.argv[6] == "1"
log = out / "logs" / f"{part}.log"
text = log.read_text(errors="replace") if log.is_file() else ""
figures = None
for line in reversed(text.splitlines()):
    line = line.strip()
    if line.startswith("{") and line.endswith("}"):
        try:
            figures = json.loads(line)
            break
        except ValueError:
            pass
if figures is None and part == "tests":  # pytest's closing tally, e.g. "3 passed, 9 skipped in 4.1s"
    tally = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", text)}
    figures = tally or None
row = {"part": part, "ok": rc == 0 and figures is not None, "rc": rc, "part_wall_s": round(wall_ms / 1000, 1),
       "dry_run": dry, **hardware_fields(), **json.loads(extra or "{}"), **(figures or {}), "log": str(log)}
(out / f"{part}.json").write_text(json.dumps(row, indent=1) + "\n")
print(json.dumps(row), flush=True)
sys.exit(0 if row["ok"] else 1)
PYEOF
}

# run PART EXTRA_JSON COMMAND...: the command with its output in the part's log, then emit
run() {
    local part=$1 extra=$2 start rc
    shift 2
    start=$(date +%s%N)
    "$@" >"$OUT/logs/$part.log" 2>&1
    rc=$?
    emit "$part" "$rc" "$(( ($(date +%s%N) - start) / 1000000 ))" "$extra" || FAILED=1
}

for part in $PARTS; do
    case "$part" in
    tests)
        run tests '{}' "$PY" -m pytest -q -m gpu -p no:cacheprovider -o "addopts=" tests/ ;;
    lm)
        anchor='{"anchor": "nanoGPT shakespeare-char: val loss 1.4697 in about 3 minutes on an A100"}'
        if [ "$DRY" = 1 ]; then
            run lm "$anchor" "$PY" scripts/bench_lm.py --config configs/lm_shakespeare_gpu.yaml --accelerator cpu \
                --max-steps 5 --minutes 1 --root "$RUNS/lm" --set n_layer=1 n_head=2 n_embd=32 \
                data.block_size=32 data.batch_size=8 data.num_workers=0
        else
            run lm "$anchor" "$PY" scripts/bench_lm.py --config configs/lm_shakespeare_gpu.yaml --accelerator gpu \
                --minutes "$LM_MINUTES" --root "$RUNS/lm"
        fi ;;
    lm_compile)
        if [ "$DRY" = 1 ]; then  # the flag's path only: tests/test_lm.py checks compiled training itself
            TORCH_COMPILE_DISABLE=1 run lm_compile '{}' "$PY" scripts/bench_lm.py --config configs/lm_shakespeare_gpu.yaml --accelerator cpu \
                --max-steps 3 --minutes 1 --root "$RUNS/lm_compile" --set n_layer=1 n_head=2 n_embd=32 \
                data.block_size=32 data.batch_size=8 data.num_workers=0 compile=true
        else
            run lm_compile '{}' "$PY" scripts/bench_lm.py --config configs/lm_shakespeare_gpu.yaml --accelerator gpu \
                --max-steps 1000 --minutes 2 --root "$RUNS/lm_compile" --set compile=true
        fi ;;
    dcgan)
        for precision in 16-mixed bf16-mixed; do
            if [ "$DRY" = 1 ]; then
                run "dcgan_$precision" '{}' "$PY" scripts/bench_dcgan.py --epochs 1 --max-minutes 0.25 \
                    --n-samples 500 --precision "$precision" --root "$RUNS/dcgan_$precision" \
                    --out "$OUT/dcgan_$precision" -- --data.init_args.train_limit 256 --model.init_args.g_width 8 \
                    --model.init_args.d_width 0.25 --trainer.accelerator cpu --trainer.enable_progress_bar false
            else
                run "dcgan_$precision" "{\"minutes\": $DCGAN_MINUTES}" "$PY" scripts/bench_dcgan.py \
                    --max-minutes "$DCGAN_MINUTES" --precision "$precision" --root "$RUNS/dcgan_$precision" \
                    --out "$OUT/dcgan_$precision" -- --trainer.accelerator gpu --trainer.enable_progress_bar false
            fi
        done ;;
    vae)
        if [ "$DRY" = 1 ]; then
            run vae '{}' "$PY" scripts/bench_vae.py --epochs 1 --limit-train-batches 5 --iwae-k 2 --iwae-images 20 \
                --root-dir "$RUNS/vae"
        else
            run vae '{}' "$PY" scripts/bench_vae.py --epochs 30 --iwae-k 100 --iwae-images 1000 --root-dir "$RUNS/vae"
        fi ;;
    precision)
        if [ "$DRY" = 1 ]; then
            run precision '{}' "$PY" scripts/bench_precision.py --accelerator cpu --tiny --steps 2 --warmup 1 \
                --precisions 32-true bf16-mixed --root "$RUNS/precision"
        else
            run precision '{}' "$PY" scripts/bench_precision.py --root "$RUNS/precision"
        fi ;;
    esac
done
echo "gpu_check.sh: $([ "$FAILED" = 0 ] && echo "all parts passed" || echo "some parts FAILED") ($OUT)" >&2
exit "$FAILED"

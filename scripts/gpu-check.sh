#!/usr/bin/env bash
# The CUDA checks on a real GPU, in one go: the machine and versions, the CUDA
# test file on hardware (every kernel against the numpy reference), then the
# GPU benchmark, which records lstmlib/bench_results/gpu-<date>T<time>.json.
# Logs and the recording are copied to $OUT (default: gpu-check-out/).
#
#   bash scripts/gpu-check.sh            # everything
#   TESTS_S=120 BENCH_S=240 bash scripts/gpu-check.sh   # time limits (s)
set -u
OUT=${OUT:-gpu-check-out}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
unset NUMBA_ENABLE_CUDASIM

# Wheels in .whl/ (git-ignored) are installed first, for a GPU machine whose
# packages clash: numba-cuda 0.2x registers np.row_stack, which numpy 2.5
# removed, so there a numpy 2.4 wheel goes in .whl/.
if ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
        --upgrade --target /tmp/gpu-check-site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/gpu-check-site:$PYTHONPATH"
fi

{
    date -u +%FT%TZ
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
    lscpu | grep -m1 'Model name'
    $PY - <<'PY'
import numpy, numba, torch
from numba import cuda
print("numpy", numpy.__version__, "| numba", numba.__version__,
      "| torch", torch.__version__, "| cuda available", cuda.is_available())
try:
    import numba_cuda
    print("numba-cuda", numba_cuda.__version__)
except ImportError:
    print("numba-cuda not installed")
PY
} 2>&1 | tee "$OUT/env.txt"

status=0
timeout "${TESTS_S:-240}" $PY -m pytest -p no:cacheprovider -q -rs \
    ${TEST_ARGS:-tests/kernels/test_kernels_cuda.py} 2>&1 | tee "$OUT/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

if [ "${SKIP_BENCH:-0}" != 1 ]; then
    before=$(ls lstmlib/bench_results/gpu-*.json 2>/dev/null)
    timeout "${BENCH_S:-300}" $PY -m lstmlib.bench --gpu --record \
        ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.log"
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    for f in lstmlib/bench_results/gpu-*.json; do
        case " $before " in *" $f "*) ;; *) [ -f "$f" ] && cp "$f" "$OUT/";; esac
    done
fi

# the summary: the tests' last line, then the recorded benchmark as a table
{
    echo "== summary ($(date -u +%FT%TZ), ${SECONDS} s) =="
    echo "tests: $(tail -n 1 "$OUT/tests.log" 2>/dev/null)"
    $PY - "$OUT" <<'PY'
import glob, json, os, sys
files = sorted(glob.glob(os.path.join(sys.argv[1], "gpu-*.json")))
if not files:
    print("benchmark: nothing recorded (see bench.log)")
    sys.exit()
res = json.load(open(files[-1]))
print(f"benchmark: {os.path.basename(files[-1])}, {res['meta'].get('gpu')}, "
      f"float32 peak {res['peak'].get('sgemm_tflops', float('nan')):.1f} "
      f"TFLOP/s")
print(f"{'cell':4} {'dtype':7} {'shape':8} {'method':13} {'fwd ms':>8} "
      f"{'/cuDNN':>7} {'f+b ms':>8} {'/cuDNN':>7} {'TFLOP/s':>8} "
      f"{'%peak':>6} {'f+b %pk':>7}")
nan = float("nan")
for r in res["rows"]:
    method = f"{r.get('method')}/{r.get('backward_method')}"
    if not r.get("correct"):
        print(f"{r['cell']:4} {r['dtype']:7} {r['shape']:8} {method:13} "
              f"WRONG: error {r.get('max_error', nan):.1e}")
        continue
    print(f"{r['cell']:4} {r['dtype']:7} {r['shape']:8} {method:13} "
          f"{r.get('fwd_ms', nan):8.3f} {r.get('ratio_vs_cudnn', nan):7.2f} "
          f"{r.get('train_ms', nan):8.3f} "
          f"{r.get('ratio_train_vs_cudnn', nan):7.2f} "
          f"{r.get('tflops', nan):8.3f} {r.get('pct_peak', nan):6.2f} "
          f"{r.get('train_pct_peak', nan):7.2f}")
try:
    from lstmlib.bench import GPU_GOALS, format_goals, goal_report
except ImportError as exc:
    print(f"goals: not evaluated ({exc})")
    sys.exit()
goals = goal_report(res["rows"], GPU_GOALS, "ratio_vs_cudnn")
print("goals (paired ratio ours/cuDNN, forward; lower is faster):")
print(format_goals(goals, "cuDNN") if goals else "  none measured")
PY
    [ "$status" -eq 0 ] && echo "status: all passed" || echo "status: FAILURES (see above)"
} 2>&1 | tee "$OUT/summary.txt"
exit $status

#!/usr/bin/env bash
# The prepared check for a CUDA machine (issue 18): one command, under 8 minutes, every figure in one file.
#
#   bash benchmarks/gpu_check.sh [OUT_DIR]        # OUT_DIR defaults to $OUT, else /tmp
#
# It needs nothing but this repository, its Python requirements and a CUDA build of torch. Python packages the
# machine lacks are installed from ./.whl/ when that folder exists (bash benchmarks/gpu_prepare.sh fills it on a
# machine with network access); the real ModelNet10 is read from ./.gpu_data/ when present (gpu_prepare.sh copies
# it there), else the grid slice runs on the built-in `shapes` data. Each part has its own time limit, so one slow
# part cannot eat the others' time; the file says which parts ran, were skipped or timed out.
set -uo pipefail
cd "$(dirname "$0")/.."
out_dir=${1:-${OUT:-/tmp}}
mkdir -p "$out_dir"
report="$out_dir/gpu_check.txt"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" DDBENCH_CACHE=/tmp/ddbench-cache
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
part() {  # part NAME SECONDS COMMAND...: run one part with a limit, its output appended to the report
  local name=$1 limit=$2; shift 2
  echo "## $name (limit ${limit}s)" >>"$report"
  local start=$SECONDS
  timeout "$limit" "$@" >>"$report" 2>&1
  local rc=$?
  echo "-- $name: exit $rc after $((SECONDS - start))s$([ $rc = 124 ] && echo ' (TIMED OUT)')" >>"$report"
  echo >>"$report"
}
{
  echo "# ddbench gpu_check $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
  echo
} >"$report"
python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || { echo "no CUDA device" >>"$report"; exit 1; }
part "tests marked cuda" 100 python3 -m pytest -q -m cuda tests/test_cuda.py -p no:cacheprovider
part "evaluation: batched ensemble against the sequential loop (target >= 5x)" 130 \
  python3 benchmarks/bench_speed_table.py --device cuda --skip distill,memory --nets 10 --eval-epochs 3
part "distillation iterations of every learned method" 110 \
  python3 benchmarks/bench_methods.py --device cuda --methods sadm,dm,dc,dd3d,3ddp --ppc 1,3,10 --iterations 2
part "sequential evaluation loop, fused and plain PointNet layers" 50 \
  python3 benchmarks/bench_eval_loop.py --device cuda --ppc 1,10 --epochs 3 --repeats 1
if [ -d .gpu_data/modelnet10_hdf5_1024 ]; then
  data=(--datasets modelnet10 --data-root .gpu_data)
else
  data=(--datasets shapes)
fi
part "grid slice end to end on cuda" 70 python3 -m ddbench run "${data[@]}" --methods random,sadm --ppc 1 \
  --iterations 20 --eval-nets 10 --epochs 50 --device cuda --results /tmp/gpu_check_runs
part "grid slice table" 20 python3 -m ddbench table --results /tmp/gpu_check_runs
echo "wrote $report"

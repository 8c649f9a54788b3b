#!/usr/bin/env bash
# The checks that need a GPU, as one run of under 9 minutes on a lent device machine.
#
#   bash tools/gpu_checks.sh --prepare    # here: wheels and the feature cache to carry
#   bash tools/gpu_checks.sh              # there, with .whl and .gpu_cache carried
#
# There, python3 holds torch and torch-geometric but not RDKit or GUDHI: --prepare downloads
# their wheels for that Python (3.12) into .whl/ and copies the feature-cache entries of
# FreeSolv, BACE and Lipophilicity into .gpu_cache/ (tools/export_cache.py: the whole cache
# can outgrow the 64 MiB upload), so that none of their conformers is embedded there. Each step has its own
# time limit, and a failed step does not stop the next. What comes back, in $OUT (at most 8 files):
#   test_gpu.log        pytest -m gpu tests/models/test_gpu.py (bf16 forward/backward of every
#                       backbone, sparse dispatch, a training run and checkpoint round trip)
#   nccl.log            one NCCL rank through torchrun: the backend and world size it recorded
#   throughput.log      training molecules/s on 4,000 Tox21 molecules (a QM9 stand-in: ~18
#                       atoms with H), sparse k=2, bf16, batches of 256 and 1024, and at 1024:
#                       with 4 loader workers, dense, and with --compile (torch.compile, Triton)
#   profile_step_gpu.md benchmarks/profile_step.py at a batch of 1024: host waits per step and
#                       the operators with the most device time
#   open_questions_gpu.md, open_questions_gpu_trunk_cost.csv
#                       Q3 on the GPU: peak memory and time, shared trunk vs independent
#   gpu_work.tgz        every run folder and measurement, to merge here
#
#   bash tools/gpu_checks.sh --accuracy [DATASETS]   # there: issue 15's full-size runs instead
#
# trains the pending runs of bench_accuracy.py on DATASETS (default lipo) with --device cuda,
# all of a dataset's runs of our models at once (chemprop stays on the CPU, here), for about
# 8 minutes. Finished runs come back in accuracy_runs.tgz: unpack it in the repository root
# and commit the run files with the re-rendered report. Unfinished runs are lost (their
# checkpoints are too large to bring back); accuracy.log says how many epochs each reached.
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--prepare" ]]; then
    mkdir -p .whl .gpu_cache
    rdkit=$(.venv/bin/python -c "import rdkit; print(rdkit.__version__)")
    gudhi=$(.venv/bin/python -c "import gudhi; print(gudhi.__version__)")
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
        "rdkit==$rdkit" "gudhi==$gudhi" || exit 1
    # Only what the steps there read (FreeSolv, BACE; Lipophilicity for --accuracy): the
    # whole cache can outgrow the upload.
    .venv/bin/python tools/export_cache.py .gpu_cache freesolv bace lipo || exit 1
    du -sh .whl .gpu_cache
    echo "then: run(command='bash tools/gpu_checks.sh', carry=['.whl', '.gpu_cache'], timeout_s=600)"
    exit 0
fi

OUT=${OUT:-/tmp/gpu_checks_out}
mkdir -p "$OUT" /tmp/gpu_work
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1 MIMOE_CACHE_DIR=/tmp/gpu_work/cache
mkdir -p "$MIMOE_CACHE_DIR" && cp .gpu_cache/featurize.sqlite "$MIMOE_CACHE_DIR/"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/throughput.log"

step() {  # step SECONDS LOG COMMAND...: run one check, its output appended to LOG
    local limit=$1 log=$2
    shift 2
    echo "== $* (limit ${limit} s)" >> "$log"
    timeout "$limit" "$@" >> "$log" 2>&1
    echo "== exit $?" >> "$log"
}

if [[ "${1:-}" == "--accuracy" ]]; then
    work=benchmarks/results/runs/accuracy_full
    touch /tmp/gpu_work/started
    step 500 "$OUT/accuracy.log" python3 benchmarks/bench_accuracy.py --datasets "${2:-lipo}" \
        --device cuda --jobs 12 --out /tmp/gpu_work/accuracy_full.md
    python3 - "$work" >> "$OUT/accuracy.log" 2>&1 <<'EOF'
import sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
import _parallel_runs
work = Path(sys.argv[1])
started = [work / f"{d.name}.json" for d in (work / _parallel_runs.IN_PROGRESS).glob("*")]
print(_parallel_runs.status_lines([p for p in started if not p.exists()]))
EOF
    find "$work" -maxdepth 1 -name "*.json" -newer /tmp/gpu_work/started > /tmp/gpu_work/new
    tar -czf "$OUT/accuracy_runs.tgz" -T /tmp/gpu_work/new
    echo "finished runs: $(wc -l < /tmp/gpu_work/new)" >> "$OUT/accuracy.log"
    exit 0
fi

# Limits add up to 550 s: with the machine's start and the transfers, one call of 600 s.
step 80 "$OUT/test_gpu.log" python3 -m pytest -m gpu -p no:cacheprovider -q tests/models/test_gpu.py

step 40 "$OUT/nccl.log" python3 -m torch.distributed.run --standalone --nproc-per-node 1 \
    -m mimoe_core train --dataset freesolv --limit 64 --epochs 2 --device cuda --quiet \
    --out /tmp/gpu_work/nccl
python3 -c "import json; m = json.load(open('/tmp/gpu_work/nccl/metrics.json')); \
print('world_size', m['world_size'], 'distributed', m['distributed'])" >> "$OUT/nccl.log" 2>&1

# Tox21 is not in the carried cache: its first 4,000 molecules, embedded on all cores there.
tox21=(--dataset tox21 --limit 4000)
step 100 "$OUT/throughput.log" python3 -m mimoe_core featurize "${tox21[@]}" --jobs 16 \
    --quiet --out /tmp/gpu_work/tox21_features
for batch in 256 1024; do
    step 40 "$OUT/throughput.log" python3 -m mimoe_core train "${tox21[@]}" --epochs 3 \
        --device cuda --batch-size "$batch" --quiet --out "/tmp/gpu_work/tox21_b$batch"
done
# Batches assembled ahead by 4 worker processes instead of in line (the same batches).
step 40 "$OUT/throughput.log" python3 -m mimoe_core train "${tox21[@]}" --epochs 3 \
    --device cuda --batch-size 1024 --loader-workers 4 --quiet \
    --out /tmp/gpu_work/tox21_b1024_workers4
step 40 "$OUT/throughput.log" python3 -m mimoe_core train "${tox21[@]}" --epochs 3 \
    --device cuda --batch-size 1024 --variant dense --quiet --out /tmp/gpu_work/tox21_b1024_dense
# Compiled: its first epoch holds the compilation, so the 3 epochs' rate understates it.
step 50 "$OUT/throughput.log" python3 -m mimoe_core train "${tox21[@]}" --epochs 3 \
    --device cuda --batch-size 1024 --compile --quiet --out /tmp/gpu_work/tox21_b1024_compiled
python3 - >> "$OUT/throughput.log" 2>&1 <<'EOF'
import json, pathlib
for run in sorted(pathlib.Path("/tmp/gpu_work").glob("tox21_*")):
    timing = json.loads((run / "metrics.json").read_text())["timing"]
    print(run.name, "train molecules/s", round(timing["train_molecules_per_second"], 1))
EOF

# Where a step's time goes on the device, and how often it makes the host wait (3 x 1,024 of
# the Tox21 molecules featurized above).
step 30 "$OUT/throughput.log" python3 benchmarks/profile_step.py --device cuda --batch 1024 \
    --steps 3 --jobs 16 --out "$OUT/profile_step_gpu.md"

step 90 "$OUT/open_questions_gpu.log" python3 benchmarks/bench_open_questions.py --device cuda \
    --questions 3 --work /tmp/gpu_work/open_questions --out "$OUT/open_questions_gpu.md"
cat "$OUT/open_questions_gpu.log" >> "$OUT/throughput.log" && rm "$OUT/open_questions_gpu.log"

tar -czf "$OUT/gpu_work.tgz" -C /tmp/gpu_work --exclude cache --exclude "*.pt" .
ls -la "$OUT"

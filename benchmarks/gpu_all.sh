#!/usr/bin/env bash
# Every GPU check of vpjax in one script, for an offline H100/H200 host (see README "GPU runs").
# Run from the project root with the wheels from ../shared/gpu/fetch_wheels.sh in .whl/:
#   OUT=/some/dir bash benchmarks/gpu_all.sh
# Each step has its own time limit so that one slow step cannot eat the others; logs and result
# tables go to $OUT; a summary table is printed last.
set -u
OUT="${OUT:-$PWD/gpu_out}"
mkdir -p "$OUT"
if [ -d .whl ] && ! python3 -c "import mujoco, mujoco.mjx, brax" 2>/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONUNBUFFERED=1 XLA_FLAGS=--xla_gpu_triton_gemm_any=true MUJOCO_GL=disable
export XLA_PYTHON_CLIENT_MEM_FRACTION=0.9
nvidia-smi -L | tee "$OUT/card.txt"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oE 'H100|H200|A100|L40S|L4' || echo gpu)
card=$(echo "$card" | tr 'A-Z' 'a-z')
python3 -c "import jax; print('jax', jax.__version__, jax.devices())" | tee "$OUT/jax.txt"

status=()
step() {  # step NAME SECONDS COMMAND...
  local name=$1 secs=$2; shift 2
  local t0=$(date +%s)
  echo "=== $name (limit ${secs}s): $*"
  timeout "$secs" "$@" > "$OUT/$name.log" 2>&1
  local rc=$?
  local t1=$(date +%s)
  tail -n 25 "$OUT/$name.log"
  status+=("| $name | $rc | $((t1 - t0)) |")
}

# Order = priority (a session has ~15 min of device time including start-up): the owed dishwashing
# learning runs first (demonstrations -> DAgger, then PPO from scratch), then env and training
# throughput, then the valuation rerun.
step learn_dagger "${DAGGER_SECS:-330}" python3 benchmarks/learn_dishwashing.py --route dagger --env dishwashing \
  --rounds "${DAGGER_ROUNDS:-6}" --results "$OUT" --policy-out "$OUT/policy_dishwashing"
# bricklaying's DAgger (bricks/h against its expert) when a session has the time: BRICK_SECS=330
if [ "${BRICK_SECS:-0}" -gt 0 ]; then
  step learn_dagger_bricklaying "$BRICK_SECS" python3 benchmarks/learn_dishwashing.py --route dagger --env bricklaying \
    --rounds "${DAGGER_ROUNDS:-6}" --set imitation.sgd_steps=8000 --set imitation.lr_decay=0.9 \
    --set imitation.keyframe_weight=10 --results "$OUT" --policy-out "$OUT/policy_bricklaying"
fi
step learn_dishwashing "${LEARN_SECS:-200}" python3 benchmarks/learn_dishwashing.py \
  --minutes "${LEARN_MINUTES:-2.5}" --num-envs "${LEARN_ENVS:-4096}" --results "$OUT" --policy-out "$OUT/learn_policy"
# each batch size takes ~80 s with its compiles (add 1024 and --compare-fresh when time allows)
step env_throughput "${ENV_SECS:-200}" python3 benchmarks/env_throughput.py \
  --batch-sizes "${ENV_BATCHES:-16384,4096}" --seconds 3 --out "$OUT/env_throughput_$card.md"
step train_throughput "${TRAIN_SECS:-150}" python3 benchmarks/train_throughput.py --env dishwashing \
  --num-envs "${TRAIN_ENVS:-2048}" --iterations 4 --repeats 1 --out "$OUT/train_throughput_$card.md"
step valuation_throughput "${VAL_SECS:-120}" python3 benchmarks/valuation_throughput.py --only novelty --only memory \
  --queries 10000 --stored 100000 --chunk-size 16384 --query-block 10000 --mem-stored 1000000 --mem-queries 10000 \
  --out "$OUT/valuation_throughput_$card.md"

echo
echo "## GPU checks ($card)"
echo "| step | exit | seconds |"
echo "|---|---:|---:|"
printf '%s\n' "${status[@]}"
for f in "$OUT"/*.md; do echo; echo "### $(basename "$f")"; cat "$f"; done

#!/usr/bin/env bash
# Installs vpjax and runs the main job on dishwashing, sized to this machine's hardware:
#   1. demonstrations -> DAgger: the task's scripted expert teaches PPO's policy network
#      (python -m train --algorithm dagger --size auto: 32 robots per round on a CPU, thousands on a GPU);
#   2. a short PPO fine-tune from that policy with the economic reward (python -m train --init);
#   3. the economic evaluation on held-out scenes beside the scripted expert, and the parity plot.
# Usage: bash scripts/main.sh [extra flags for both `python -m train` calls]
#   VPJAX_DAGGER_MINUTES (default 9 on a CPU, 15 on a GPU) and VPJAX_FINETUNE_MINUTES (default 2 / 10)
#   cap the two training steps.
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
gpu=0
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then extra="[cuda]"; gpu=1; fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".${extra}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
# CPU: 7 rounds of 32 robots (~8 min; --minutes stops it earlier on a slower machine); GPU: --size auto's 12 rounds
if [ "$gpu" = 1 ]; then dagger=(--minutes "${VPJAX_DAGGER_MINUTES:-15}"); tune_min=10
else dagger=(--rounds 7 --minutes "${VPJAX_DAGGER_MINUTES:-9}"); tune_min=2; fi
tune_min="${VPJAX_FINETUNE_MINUTES:-$tune_min}"
# the held-out evaluation is step 3's (the same scenes for the robot and the expert)
python3 -m train --env dishwashing --algorithm dagger --size auto "${dagger[@]}" \
    --set imitation.num_eval_envs=0 --out runs/main-dagger "$@"
# gentle: a small step size, no entropy bonus, the critic first, a KL anchor to the DAgger policy (PPO at its
# defaults wrecked this policy within 64k steps: benchmarks/results/finetune_dishwashing_cpu.md)
python3 -m train --env dishwashing --init runs/main-dagger --size auto --minutes "$tune_min" \
    --learning-rate 1e-5 --set ppo.entropy_cost=0 --set ppo.critic_warmup_iterations=10 \
    --set ppo.anchor_coef=5.0 --out runs/main "$@"
python3 -m evaluate --policy runs/main --env dishwashing

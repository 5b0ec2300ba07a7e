#!/usr/bin/env bash
# Installs vpjax and runs the main job: a short dishwashing PPO run sized to this machine's hardware,
# then the economic evaluation (MPᵣ, e, ŵᵣ, parities, convergence) and its plot.
# Usage: bash scripts/main.sh [extra `python -m train` flags]
set -euo pipefail
cd "$(dirname "$0")/.."
extra=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then extra="[cuda]"; fi
python3 -m pip install -q --disable-pip-version-check -e ".${extra}"
export MUJOCO_GL="${MUJOCO_GL:-egl}"
python3 -m train --env dishwashing --size auto --out runs/main "$@"
python3 -m evaluate --policy runs/main --env dishwashing

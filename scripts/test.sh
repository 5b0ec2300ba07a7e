#!/usr/bin/env bash
# Installs vpjax with its test tools and runs the default test suite (slow tests excluded).
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -e ".[dev]"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" MUJOCO_GL="${MUJOCO_GL:-egl}"
# Two workers, one test file each at a time, so module-scoped compiled functions are shared; the 30
# slowest tests are listed at the end (the suite is held to 15 minutes on 2 cores).
exec python3 -m pytest -q -n 2 --dist loadfile --durations=30 "$@"

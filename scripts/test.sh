#!/usr/bin/env bash
# Installs vpjax with its test tools and runs the default test suite (slow tests excluded).
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --disable-pip-version-check -e ".[dev]"
export JAX_PLATFORMS="${JAX_PLATFORMS:-cpu}" MUJOCO_GL="${MUJOCO_GL:-egl}"
# XLA's multi-threaded Eigen pool on CPU can wedge (every thread idle, block_until_ready never returns)
# on small, loaded machines; we saw it once on 2 cores. Single-threaded Eigen avoids it, and with two
# pytest workers on two cores it costs nothing.
export XLA_FLAGS="${XLA_FLAGS:+$XLA_FLAGS }--xla_cpu_multi_thread_eigen=false"
# Two workers, one test file each at a time, so module-scoped compiled functions are shared.
exec python3 -m pytest -q -n 2 --dist loadfile "$@"

"""The trainer tests' env: the package's point task (envs/point.py), importable as ``point_env``.

Kept as a file so ``--env tests/train/point_env.py:PointDeliver`` (the CLI tests and
benchmarks/train_throughput.py) names it.
"""

from envs.point import PointData, PointDeliver, PointParams

__all__ = ["PointDeliver", "PointParams", "PointData"]

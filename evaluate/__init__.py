"""``python -m evaluate``: a top-level shim for :mod:`train.evaluate` (the seed's command name)."""

from train.evaluate import main

__all__ = ["main"]

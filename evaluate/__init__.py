"""``python -m evaluate``: a top-level shim for :mod:`train.evaluate` (the command name README's CLI section uses)."""

from train.evaluate import main

__all__ = ["main"]

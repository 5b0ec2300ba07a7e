"""Fixtures shared by every test folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _one_line_refusal(rc, err: str, argv) -> str:
    """Asserts a CLI refused its input as documented: status 2, one stderr line, no traceback; returns the line."""
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (argv, rc, err[-3000:])
    return lines[0]


@pytest.fixture
def refusal(capsys):
    """``refusal(main, argv) -> line``: runs a CLI's ``main`` in this process and asserts that it refused
    the input as the command would: exit status 2 (returned, or argparse's ``SystemExit(2)``) and exactly
    one stderr line, no traceback. Returns that line."""

    def run(main, argv):
        try:
            rc = main(argv)
        except SystemExit as e:  # argparse's own refusals (usage errors) exit with status 2
            rc = e.code
        return _one_line_refusal(rc, capsys.readouterr().err, argv)

    return run


@pytest.fixture
def refused_command():
    """``refused_command(module, argv, **env) -> line``: the same check on the real ``python -m module``
    in a subprocess (CPU JAX, ``env`` added to the environment)."""

    def run(module, argv, **env):
        p = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env={**os.environ, "JAX_PLATFORMS": "cpu", **env})
        return _one_line_refusal(p.returncode, p.stderr, argv)

    return run

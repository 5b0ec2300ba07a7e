"""``python -m envs.<task>`` argument checks (envs/cli.py); they fail before any compile."""

from __future__ import annotations

import pytest

import envs
from envs.cli import main


@pytest.mark.parametrize("name", envs.registered())
@pytest.mark.parametrize(
    "argv, message",
    [(["--size", "big"], "--size"), (["--seconds", "0"], "--seconds"), (["--fps", "0"], "--fps")],
)
def test_cli_rejects_bad_arguments(name, argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(name, argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err

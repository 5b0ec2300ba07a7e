"""Fixtures shared by every test folder."""

from __future__ import annotations

import pytest


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
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert rc == 2 and len(lines) == 1 and "Traceback" not in err, (argv, rc, err[-3000:])
        return lines[0]

    return run

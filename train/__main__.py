"""``python -m train``: see :mod:`train.cli`. A user's mistake is one line on stderr and exit status 2."""

import sys

from train.cli import main
from vpjax.cli import run_main

sys.exit(run_main(main, prog="python -m train"))

import sys

from train.evaluate import main
from vpjax.cli import run_main

sys.exit(run_main(main, prog="python -m evaluate"))

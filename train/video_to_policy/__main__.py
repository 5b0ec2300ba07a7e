"""``python -m train.video_to_policy``: see :mod:`train.video_to_policy.cli`."""

import sys

from .cli import main

sys.exit(main())

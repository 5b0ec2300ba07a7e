import sys

from train.evaluate import main

sys.exit(main())

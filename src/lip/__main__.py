"""``python -m lip``: the command line."""

import sys

from lip.cli import main

sys.exit(main())

"""``python -m coordinator.ui.monitor [flags]``: the same as ``rocknet monitor [flags]``."""

import sys

from coordinator.ui.cli import main

sys.exit(main(["monitor", *sys.argv[1:]]))

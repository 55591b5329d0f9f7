"""``python -m node``: run one emulated device (see node/process.py)."""

import sys

from node.process import main

sys.exit(main())

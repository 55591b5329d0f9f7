"""``python -m node``: run one emulated device (see node/main.py)."""

import sys

from node.main import main

sys.exit(main())

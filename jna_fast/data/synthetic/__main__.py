"""``python -m jna_fast.data.synthetic``: jna_fast/data/synthetic/cli.py."""

import sys

from .cli import main

sys.exit(main())

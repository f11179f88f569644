"""``python -m pipeline.share``: see :mod:`pipeline.share.cli`."""

import sys

from pipeline.share.cli import main

sys.exit(main())

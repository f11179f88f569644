"""``python -m pipeline.share``: see :mod:`pipeline.share.cli`."""

import sys

from pipeline.share.cli import main

if __name__ == "__main__":
    sys.exit(main())

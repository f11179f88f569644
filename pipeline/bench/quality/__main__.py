"""``python -m pipeline.bench.quality``: see :func:`pipeline.bench.quality.cli.main`."""

import sys

from pipeline.bench.quality.cli import main

if __name__ == "__main__":
    sys.exit(main())

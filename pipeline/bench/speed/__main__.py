"""``python -m pipeline.bench.speed``: see :func:`pipeline.bench.speed.cli.main`."""

from pipeline.bench.speed.cli import main

if __name__ == "__main__":
    main()

"""``python -m pipeline.data.simulate``: see :func:`pipeline.data.simulate.cli.main`."""

from pipeline.data.simulate.cli import main

if __name__ == "__main__":
    raise SystemExit(main())

"""Progress reporting: a progress bar with rate and ETA on a terminal, plain log lines otherwise (CI)."""

from __future__ import annotations

import logging
import sys
import time

from ignite.engine import Engine, Events

logger = logging.getLogger(__name__)


class TrainingProgress:
    """Show training progress.

    On a terminal (``stderr`` is a TTY) this is Ignite's :class:`~ignite.handlers.ProgressBar` with the
    step's loss; elsewhere one log line every ``log_every`` iterations with iteration rate and ETA.

    Args:
        log_every: iterations between log lines when not on a terminal.
        force_plain: always use log lines (e.g. for files).
    """

    def __init__(self, log_every: int = 10, force_plain: bool = False) -> None:
        self.log_every = max(1, int(log_every))
        self.plain = force_plain or not sys.stderr.isatty()
        self._t0 = 0.0
        self._it0 = 0

    def attach(self, engine: Engine) -> None:
        if not self.plain:
            from ignite.handlers import ProgressBar

            ProgressBar(persist=True).attach(engine, output_transform=lambda out: {"loss": out["loss"]})
            return
        engine.add_event_handler(Events.STARTED, self._start)
        engine.add_event_handler(Events.ITERATION_COMPLETED(every=self.log_every), self._log)

    def _start(self, engine: Engine) -> None:
        self._t0, self._it0 = time.perf_counter(), engine.state.iteration

    def _log(self, engine: Engine) -> None:
        state = engine.state
        total = (state.max_epochs or 0) * (state.epoch_length or 0)
        done = state.iteration - self._it0
        rate = done / max(time.perf_counter() - self._t0, 1e-9)
        eta = (total - state.iteration) / rate if rate > 0 and total else float("nan")
        loss = state.output.get("loss", float("nan")) if isinstance(state.output, dict) else float("nan")
        logger.info(
            f"iteration {state.iteration}/{total} epoch {state.epoch}/{state.max_epochs} "
            f"loss {loss:.4g} | {rate:.2f} it/s, ETA {eta / 60:.1f} min"
        )

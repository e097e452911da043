"""Stopping on SIGINT and SIGTERM: the signal is noted, the loop saves and stops after the
current step; under ``--distributed`` the ranks vote, so that every rank stops after the
same step."""
import os
import signal
import threading
from pathlib import Path
from typing import Optional

from ..errors import Interrupted


class StopSignals:
    """Within the context, SIGINT and SIGTERM set ``signal`` instead of killing the
    process; a second one acts as usual. Outside the main thread, signals are left alone.

    ``step`` is the SVI step; a distributed step carries the votes (``stop_requested`` out,
    ``stop_votes`` in) in its gradient all_reduce. A signal is acted on before the
    checkpoint that follows it is written, so nothing of it is saved: ``state_dict`` is empty."""

    def __init__(self, step=None, world: int = 1):
        self.step, self.world = step, world
        self.signal: Optional[int] = None
        self._previous = {}

    def agreed(self, global_step: int, now: bool = False) -> bool:
        """Whether to stop. Alone: as soon as a signal came. Distributed: when any rank has
        one, read from the votes every 25 steps and at epoch ends (``now``)."""
        if self.world == 1:
            return self.signal is not None
        self.step.stop_requested = self.signal is not None
        if now or global_step % 25 == 0:
            return self.step.stop_votes is not None and float(self.step.stop_votes) > 0
        return False

    def interrupted(self, global_step: int, out: Path) -> Interrupted:
        """The exception that ends the run, saying how to resume (exit status 128 + signal)."""
        signum = self.signal or signal.SIGTERM  # a rank stopping on another rank's signal
        name = signal.Signals(signum).name
        return Interrupted(f"{name}: stopped after step {global_step} and saved {out / 'checkpoint.pt'}; "
                           f"resume with: python scripts/svi_train.py --resume {out}", 128 + signum)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def _handle(self, signum, frame):
        if self.signal is not None:  # the second time: the old behaviour
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            os.kill(os.getpid(), signum)
            return
        self.signal = signum

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False

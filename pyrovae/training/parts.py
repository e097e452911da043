"""The parts of a run's state, each with ``state_dict()`` and ``load_state_dict()``.

A checkpoint holds one entry per part (``loop``, ``selection``, ``schedule``, ``record``,
``stop``, ``rng``) beside the weights, the optimizer state and the settings, so a resumed
run rebuilds each part from its own entry. ``metrics.json`` is written from the parts
(:meth:`RunRecord.metrics`) and never read back.
"""
import time
from typing import Optional

import torch

from ..errors import TrainingError
from ..infer.svi import EpochState
from .checkpoint import capture_rng, restore_rng
from .files import last_checkpoint


class Selection:
    """Best epoch, patience and early stopping. ``rule`` is ``"valid_elbo"`` (the best
    epoch has the highest validation ELBO) or ``"last_epoch"`` (no validation set: the last
    epoch is the best, and nothing stops early). The test ELBO is recorded in ``best``,
    never compared. ``patience`` epochs without a better validation ELBO (not counting
    KL warm-up epochs, whose objective still changes) stop the run; 0 never stops it."""

    def __init__(self, rule: str, patience: int = 0):
        self.rule, self.patience = rule, patience
        self.best: Optional[dict] = None  # {"epoch", "test_elbo", "valid_elbo"} of the best epoch
        self.stale_epochs = 0
        self.stopped_early = False

    def update(self, epoch: int, valid_elbo: Optional[float], test_elbo: Optional[float],
               warming_up: bool = False) -> bool:
        """Count epoch ``epoch``; True when it is the new best (the caller writes ``best.pt``)."""
        best = self.best
        improved = (self.rule == "last_epoch" or best is None or best.get("valid_elbo") is None
                    or valid_elbo > best["valid_elbo"])
        if improved:
            self.best = {"epoch": epoch, "test_elbo": test_elbo, "valid_elbo": valid_elbo}
            self.stale_epochs = 0
        elif not warming_up:
            self.stale_epochs += 1
        if self.patience and self.stale_epochs >= self.patience:
            self.stopped_early = True
        return improved

    def state_dict(self) -> dict:
        return {"best": self.best, "stale_epochs": self.stale_epochs, "stopped_early": self.stopped_early}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.stale_epochs = state["best"], int(state["stale_epochs"])
        self.stopped_early = bool(state["stopped_early"])


class Schedule:
    """The learning rate per epoch: ``constant``; ``cosine`` from ``lr`` down to ``lr_min``
    over ``epochs``; ``plateau`` halves it (not below ``lr_min``) after more than
    ``lr_patience`` epochs without a better validation ELBO, warm-up epochs aside."""

    def __init__(self, optimizer: torch.optim.Optimizer, kind: str = "constant", epochs: int = 1,
                 lr_min: float = 0.0, patience: int = 0):
        self.optimizer, self.kind = optimizer, kind
        lr_scheduler = torch.optim.lr_scheduler
        if kind == "cosine":
            self.scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs, eta_min=lr_min)
        elif kind == "plateau":
            self.scheduler = lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=patience,
                                                            min_lr=lr_min)
        else:
            self.scheduler = None

    @property
    def lr(self) -> float:
        """The rate the next step trains with."""
        return self.optimizer.param_groups[0]["lr"]

    def step(self, valid_elbo: Optional[float], warming_up: bool = False) -> None:
        """At the end of an epoch, after its validation ELBO ``valid_elbo``."""
        if self.kind == "plateau":
            if not warming_up:
                self.scheduler.step(valid_elbo)
        elif self.scheduler is not None:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return {} if self.scheduler is None else self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state)


class RandomState:
    """Every random state the run draws from (see :func:`~pyrovae.training.checkpoint.capture_rng`),
    taken when the checkpoint is written and put back last on resume."""

    def state_dict(self) -> dict:
        return capture_rng()

    def load_state_dict(self, state: dict) -> None:
        restore_rng(state)


class Counters:
    """Where the loop stands: epochs done, steps done, the unfinished epoch
    (:class:`~pyrovae.infer.svi.EpochState`) and its seconds so far."""

    def __init__(self, device):
        self.device = device
        self.epoch, self.global_step, self.epoch_seconds = 0, 0, 0.0
        self.epoch_state: Optional[EpochState] = None
        self._mark = time.perf_counter()

    def start_epoch(self, num: int) -> EpochState:
        """The unfinished epoch, or a new one over ``num`` examples; starts its clock."""
        if self.epoch_state is None:
            self.epoch_state, self.epoch_seconds = EpochState.start(num, self.device), 0.0
        self._mark = time.perf_counter()
        return self.epoch_state

    def lap(self) -> None:
        """Add the seconds since the last lap (or the epoch's start) to ``epoch_seconds``."""
        now = time.perf_counter()
        self.epoch_seconds += now - self._mark
        self._mark = now

    def end_epoch(self) -> None:
        self.epoch, self.epoch_state = self.epoch + 1, None

    def check_finite(self, lr: float, out) -> None:
        """Raise :class:`~pyrovae.errors.TrainingError` naming the first non-finite step of
        the unfinished epoch (a host read: at checkpoints and epoch ends only)."""
        state = self.epoch_state
        first_bad = int(state.first_bad)
        if first_bad >= 0:
            step = self.global_step - state.position + first_bad + 1
            raise TrainingError(f"the loss is not finite in epoch {self.epoch + 1} at minibatch {first_bad + 1} "
                                f"(step {step}); lower --lr (now {lr}) or check the data; {last_checkpoint(out)}")

    def where(self) -> str:
        if self.epoch_state is not None:
            return f"epoch {self.epoch + 1}, minibatch {self.epoch_state.position}"
        return f"the end of epoch {self.epoch}"

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "global_step": self.global_step, "epoch_seconds": self.epoch_seconds,
                "epoch_state": None if self.epoch_state is None else self.epoch_state.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.global_step = int(state["epoch"]), int(state["global_step"])
        self.epoch_seconds = float(state["epoch_seconds"])
        saved = state["epoch_state"]
        self.epoch_state = None if saved is None else EpochState.from_state_dict(saved, self.device)


class RunRecord:
    """What a run reports besides its selection: what it ran (``command``, ``dataset``,
    ``device``, ``elbo``, ``likelihood``, ``selection`` rule, the test ELBO's estimator),
    the per-epoch ``history``, the last tested epoch's ``test_elbo`` (and ``test_accuracy``), the
    ``resumes``, the SVI step's mode and, for ``--fast`` on the CPU, how its matrix products run
    (``fast_step``: :func:`pyrovae.infer.matmul.choose_matmul`'s record); :meth:`metrics` adds
    the best epoch's test numbers."""

    ORDER = ("command", "model", "dataset", "device", "elbo", "likelihood", "history", "test_elbo", "test_accuracy",
             "last_test_elbo", "last_test_accuracy", "test_elbo_estimator", "selection", "best", "stopped_early",
             "resumes", "svi_step", "fast_step")

    def __init__(self, **described):
        self.state = {**described, "history": [], "test_elbo": None, "resumes": []}

    @property
    def history(self) -> list:
        return self.state["history"]

    def add(self, record: dict, svi_step: str, fast_step: Optional[dict] = None) -> None:
        """Append an epoch's record (dict of ``epoch``, ELBOs, ``kl_scale``, ``lr``, ``seconds``);
        ``svi_step`` and ``fast_step`` (where given) are the step's, as it ran this epoch."""
        self.history.append(record)
        self.tested(record)
        self.state["svi_step"] = svi_step
        if fast_step is not None:
            self.state["fast_step"] = fast_step

    def tested(self, record: dict) -> None:
        if record["test_elbo"] is not None:
            self.state["test_elbo"] = record["test_elbo"]
        if record.get("test_accuracy") is not None:  # a fraction of all test rows, never used to choose
            self.state["test_accuracy"] = record["test_accuracy"]

    def resumed(self, epoch: int, global_step: int, command: Optional[str]) -> None:
        self.state["resumes"].append({"epoch": epoch, "global_step": global_step, "command": command})

    def metrics(self, selection: Selection) -> dict:
        """The contents of ``metrics.json``: ``test_elbo`` and ``test_accuracy`` are those of the best
        epoch (the weights in ``best.pt``; None until that epoch is tested), ``last_test_elbo`` and
        ``last_test_accuracy`` those of the last epoch tested (at the end of a run: the last epoch,
        ``checkpoint.pt``)."""
        best = selection.best or {}
        tested = next((h for h in self.history if h["epoch"] == best.get("epoch")), {})  # the best epoch's record
        found = {**self.state, "best": selection.best, "stopped_early": selection.stopped_early,
                 "last_test_elbo": self.state["test_elbo"], "last_test_accuracy": self.state.get("test_accuracy"),
                 "test_elbo": best.get("test_elbo") if best.get("test_elbo") is not None else tested.get("test_elbo"),
                 "test_accuracy": best.get("test_accuracy", tested.get("test_accuracy"))}
        return {key: found[key] for key in self.ORDER
                if key in found and not (key.endswith("test_accuracy") and found[key] is None)}

    def state_dict(self) -> dict:
        return self.state

    def load_state_dict(self, state: dict) -> None:
        self.state = dict(state)


def upgrade(state: dict) -> dict:
    """A checkpoint written before the run was made of parts (its control state inside
    ``metrics``, the schedule under ``scheduler``), with the parts' entries."""
    if "record" in state or "metrics" not in state:
        return state
    metrics = dict(state["metrics"])
    selection = {"best": metrics.pop("best"), "stopped_early": metrics.pop("stopped_early"),
                 "stale_epochs": state["loop"]["stale_epochs"]}
    return {**state, "selection": selection, "schedule": state.get("scheduler") or {}, "record": metrics, "stop": {}}

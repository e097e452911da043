"""A whole training run: data -> model -> SVI epochs -> evaluation -> files in ``out``.

:func:`train` starts a run, :func:`~pyrovae.training.resume.resume` continues one (its folder opened by
:class:`~pyrovae.training.run.Run`); the :class:`Trainer` runs the epochs of both.
A run writes ``config.json`` (settings, what they resolved to, versions, device, the run's id), ``metrics.json`` (the data used, the
per-epoch ``history``, the final ``test_elbo``, the ``best`` epoch), ``checkpoint.pt`` (each part's
state, replaced atomically, so ``--resume`` continues exactly), ``best.pt`` (the best validation
ELBO's epoch) and the figures. SIGINT and SIGTERM save ``checkpoint.pt`` and raise
:class:`~pyrovae.errors.Interrupted`; a non-finite loss raises :class:`~pyrovae.errors.TrainingError`.
"""
import copy
import os
from pathlib import Path
from typing import Callable, Optional, Sequence

import pyro
import torch
from tqdm.auto import tqdm

from ..data.datasets import Dataset
from ..data.placement import place_data
from ..data.prepare import check_shapes, prepare_data
from ..data.transforms import make_transform
from ..environment import device_name
from ..errors import CheckpointError, ConfigError, one_line
from ..infer import distributed as ddp
from ..infer.svi import kl_warmup_scale, make_optimizer, run_epoch
from ..model.base import Model
from ..model.registry import CUSTOM
from ..model.registry import describe as describe_model
from .build import build_elbo, build_model, build_step, config_record, describe, epoch_rows, place, score
from .checkpoint import check_same_model, read_checkpoint, save_checkpoint
from .checks import check_selection
from .collapse import CollapseDiagnostics
from .config import TrainConfig, make_likelihood
from .files import write_json
from .parts import Counters, RandomState, RunRecord, Schedule, Selection, upgrade
from .report import Reporter, elbo_estimator, epoch_line
from .run import Run
from .rundata import run_dataset
from .signals import StopSignals
from .stacked import Stack


def train(config: TrainConfig, log: Callable[[str], None] = print, dataset: Optional[Dataset] = None,
          command: Optional[str] = None, on_epoch_end: Sequence[Callable] = (), model: Optional[Model] = None) -> dict:
    """Run the training that ``config`` describes and return its metrics.

    ``model``: a user's own :class:`~pyrovae.model.base.Model` to train instead of
    ``config.model`` (recorded as ``custom``; resume and load take its class again).
    ``dataset`` replaces loading ``config.dataset``; ``command`` (the command line that
    started the run) is recorded in ``config.json`` and ``metrics.json``. Each callable
    in ``on_epoch_end`` is called as ``f(epoch, vae, data)`` with the device-resident
    :class:`~pyrovae.data.prepare.PreparedData` before the first epoch (``epoch=0``) and
    after every epoch; it must not change the VAE or draw from the global random state."""
    if model is not None:  # a user's model: recorded as custom, its data prepared for its own likelihood
        config.model = CUSTOM
        if getattr(model, "likelihood", None) is None:
            raise ConfigError(f"{type(model).__name__} has no likelihood attribute; set self.likelihood (e.g. "
                              "pyrovae.get_likelihood('bernoulli')), which scores and prepares the data")
        config.likelihood, config.likelihood_options = model.likelihood, {}
    config.validate()
    with Run.create(config.out_dir(), main=rank_zero()) as run:
        return Trainer(config, log, dataset, command, run, model=model).loop(on_epoch_end)


def rank_zero() -> bool:
    """Whether this process writes the run's files (the other ranks of a distributed run write nothing)."""
    return os.environ.get("RANK", "0") == "0"


class Trainer:
    """One run, made of parts (:mod:`pyrovae.training.parts`): the loop's counters, the
    selection, the learning-rate schedule, the run's record, the stop signals and the
    random state. A checkpoint holds each part's ``state_dict``; :meth:`loop` trains to the end."""

    def __init__(self, config: TrainConfig, log, dataset: Optional[Dataset], command: Optional[str], run: Run,
                 resume_from: Optional[dict] = None, model: Optional[Model] = None):
        self.config, self.command, self.run = config, command, run
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        self.rank, self.world, self.device = place(config)
        self.main = self.rank == 0  # only rank 0 prints, evaluates and writes files
        self.log = log = log if self.main else (lambda line: None)
        self.out = Path(config.out_dir())
        if self.main and run.removed:
            log(f"removed {run.removed} temporary file(s) of an interrupted write in {self.out}")
        pyro.set_rng_seed(config.seed)  # torch (CPU and CUDA), numpy and random: the same on every rank

        # the data (the run's own on a resume), checked and on the device
        recorded = None if resume_from is None else upgrade(resume_from)["record"]["dataset"]
        self.dataset = run_dataset(config, dataset, log, recorded)
        if len(self.dataset.train_x) == 0 or len(self.dataset.test_x) == 0:
            raise ConfigError(f"{self.dataset.name} has no training or no test examples after the limits")
        check_shapes(self.dataset)
        likelihood = make_likelihood(config)
        self.stack = Stack.of_run(config, self.dataset, resume_from, log)  # m1m2: M2 learns M1's posterior means
        rows, prepared = (self.dataset, config) if self.stack is None else \
            (self.stack.rows(self.dataset), self.stack.prepared(config))
        # the one host-to-device copy, or pinned host memory streamed per minibatch (pyrovae.data.placement)
        self.data = place_data(prepare_data(prepared, rows, likelihood), self.device, config.data_placement, log)
        check_selection(config, has_validation=self.data.valid_x is not None)
        rule = "valid_elbo" if self.data.valid_x is not None else "last_epoch"

        # what learns
        self.vae = build_model(config, rows, likelihood, self.data.standardization, model).to(self.device)
        self.saved = self.vae if self.stack is None else self.stack.wrap(self.vae)  # what a checkpoint holds
        self.elbo = build_elbo(config, self.vae)
        self.optimizer = make_optimizer(self.vae.parameters(), config.lr)
        self.schedule = Schedule(self.optimizer, config.lr_schedule, config.epochs, config.lr_min, config.lr_patience)
        self.transform = make_transform(self.data.transform, self.data.levels)
        self.epoch_x, labels, labelled = epoch_rows(self.vae, self.data, log, config.labels_per_class)  # the rows an epoch runs over
        self.step = build_step(config, self.vae, self.elbo, self.optimizer, len(self.data.train_x), self.rank,
                               self.world, log, labels, labelled, self.transform)

        # the parts of the run's state, in the order a resume loads them (the random state last)
        shown = device_name(self.device) if self.world == 1 else f"{self.world} x {device_name(self.device)}"
        self.counters, self.selection = Counters(self.device), Selection(rule, config.early_stopping)
        self.record = RunRecord(command=command, model=describe_model(self.saved), dataset=self.dataset.summary(),
                                device=shown, elbo=config.elbo,
                                likelihood=likelihood.config(), selection=rule,
                                test_elbo_estimator=elbo_estimator(config))
        self.collapse = CollapseDiagnostics(log, self.main, self.device)  # per epoch, on the validation rows
        self.signals = StopSignals(self.step, self.world)
        self.parts = {"loop": self.counters, "selection": self.selection, "schedule": self.schedule,
                      "record": self.record, "stop": self.signals, "rng": RandomState()}
        if resume_from is None:
            if self.main:
                record = config_record(config, command, self.data, self.elbo, self.optimizer, rule, self.out, shown,
                                       self.world, self.device, run.run_id)
                if self.stack is not None:
                    record["m1"] = self.stack.provenance
                write_json(self.out / "config.json", record)
                run.started(record)
            log(describe(config, self.dataset.name, self.dataset.source, self.data, self.vae, self.elbo, shown))
        else:
            self._restore(upgrade(resume_from))
            if hasattr(self.step, "earlier"):  # --fast multiplies as it did before the interruption
                self.step.earlier = self.record.state.get("fast_step")
        self.reporter = Reporter(self.out, rows.image_shape,
                                 f"{self.dataset.name}, {self.vae.likelihood.name}, {config.elbo}",
                                 tensorboard=config.tensorboard and self.main, start_epoch=self.counters.epoch,
                                 columns=getattr(rows, "columns", None))

    # ------------------------------------------------------------------ state
    def _save(self) -> None:
        if self.main:
            parts = {name: part.state_dict() for name, part in self.parts.items()}
            save_checkpoint(self.out / "checkpoint.pt", self.saved, self.optimizer, **parts, run_id=self.run.run_id,
                            config=self.config.to_dict(), epoch=self.counters.epoch, history=self.record.history)

    def _restore(self, state: dict) -> None:
        check_same_model(self.saved, state, self.out / "checkpoint.pt")
        try:
            self.saved.load_state_dict(state["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.schedule.load_state_dict(state["schedule"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
            raise CheckpointError(f"the checkpoint in {self.out} does not match its own settings: "
                                  f"{one_line(error)}") from None
        for name, part in self.parts.items():  # the random state last
            if part is not self.schedule:
                try:
                    part.load_state_dict(state[name])
                except (KeyError, TypeError, ValueError, AttributeError, IndexError, RuntimeError) as error:
                    raise CheckpointError(f"{self.out / 'checkpoint.pt'} is a damaged pyrovae checkpoint: its {name!r} "
                                          f"part cannot be loaded ({one_line(error, 100)}); resume from an intact "
                                          "copy, or start a new run") from None
        self.record.resumed(self.counters.epoch, self.counters.global_step, self.command)
        if self.main:  # the files agree with the checkpoint, even where a kill came between them
            write_json(self.out / "metrics.json", self.record.metrics(self.selection))
        self.log(f"resuming {self.out} at {self.counters.where()} (step {self.counters.global_step})")

    # ------------------------------------------------------------------- loop
    def loop(self, on_epoch_end: Sequence[Callable]) -> dict:
        config, counters = self.config, self.counters
        if counters.epoch == 0 and counters.epoch_state is None:
            for callback in on_epoch_end:
                callback(0, self.vae, self.data)
        try:
            with self.signals:
                while counters.epoch < config.epochs and not self.selection.stopped_early:
                    self._train_one_epoch()
                    for callback in on_epoch_end:
                        callback(counters.epoch, self.vae, self.data)
                    if self.signals.agreed(counters.global_step, now=True):
                        raise self.signals.interrupted(counters.global_step, self.out)
                if self.main and self.signals.signal is None:
                    self._test_best()
                if self.main:  # a signal here skips the figures left; a resume draws them
                    self.reporter.finish(self.record.history, self.vae, self.data.test_x, test_y=self.data.test_y,
                                         stop=lambda: self.signals.signal is not None)
                if self.signals.signal is not None:
                    raise self.signals.interrupted(counters.global_step, self.out)
        except BaseException:
            if config.distributed:
                ddp.teardown(wait=False)  # the other ranks may never get here
            raise
        finally:
            self.reporter.close()
        if config.distributed:
            ddp.teardown()
        metrics = self.record.metrics(self.selection)
        best = "not tested" if metrics["test_elbo"] is None else f"{metrics['test_elbo']:.3f}"
        self.log(f"final test ELBO {best} nats per datapoint of best.pt (epoch {metrics['best']['epoch']}), "
                 f"{metrics['last_test_elbo']:.3f} of the last epoch {counters.epoch}; wrote {self.out}/")
        return metrics

    def _test_best(self) -> None:
        """The test scores of ``best.pt`` where its epoch was not tested (``--test-frequency``): its
        weights scored on the test rows (on a forked random stream), kept in the selection's ``best``,
        so that ``metrics.json``'s ``test_elbo`` is that of ``best.pt``."""
        best = self.selection.best
        if best is None or best.get("test_elbo") is not None or any(
                h["epoch"] == best["epoch"] and h.get("test_elbo") is not None for h in self.record.history):
            return
        vae = copy.deepcopy(self.saved)
        vae.load_state_dict(read_checkpoint(self.out / "best.pt", str(self.device))["state_dict"])
        vae = vae if self.stack is None else vae.m2
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            values = score(vae, self.data, test=True, valid=False, main=True, world=1, device=self.device)
        best["test_elbo"] = values["test_elbo"]
        if values.get("test_accuracy") is not None:
            best["test_accuracy"] = values["test_accuracy"]
        self._save()
        write_json(self.out / "metrics.json", self.record.metrics(self.selection))

    def _train_one_epoch(self) -> None:
        config, counters, num = self.config, self.counters, len(self.epoch_x)
        epoch = counters.epoch + 1
        weight = config.beta * kl_warmup_scale(epoch, config.kl_warmup)  # of the KL term: beta x min(1, e/W)
        kl_scale = None if weight == 1.0 else torch.tensor(float(weight), device=self.device)
        state = counters.start_epoch(num)

        def after_step(state):
            counters.global_step += 1
            if config.checkpoint_every and counters.global_step % config.checkpoint_every == 0:
                counters.check_finite(config.lr, self.out)
                counters.lap()
                self._save()
            return self.signals.agreed(counters.global_step)

        with tqdm(total=num, initial=min(num, state.position * config.batch_size), desc=f"epoch {epoch}/{config.epochs}",
                  unit="img", disable=not config.progress, leave=False) as bar:
            self.vae.train()
            finished = run_epoch(self.step, self.epoch_x, state, config.batch_size, self.transform, kl_scale,
                                 validate_first_step=counters.global_step == 0, progress=bar, after_step=after_step)
        counters.check_finite(config.lr, self.out)
        counters.lap()
        if not finished:  # a signal: save the unfinished epoch and stop
            self._save()
            raise self.signals.interrupted(counters.global_step, self.out)

        train_elbo = -float(state.total) / len(self.data.train_x)  # per training row; one host read per epoch
        record = {"epoch": epoch, "train_elbo": train_elbo,
                  **self._score(test=epoch % config.test_frequency == 0 or epoch == config.epochs),
                  **self.collapse.epoch(self.vae, self.data),  # kl_per_dim, active_units: the validation rows
                  "kl_scale": float(weight), "lr": self.schedule.lr, "seconds": counters.epoch_seconds}
        counters.end_epoch()
        self.record.add(record, getattr(self.step, "mode", "eager"), getattr(self.step, "fast_step", None))
        self.log(epoch_line(record))
        self._select(record)
        if self.selection.stopped_early and record["test_elbo"] is None:  # the last epoch is always tested
            record.update({k: v for k, v in self._score(test=True, valid=False).items() if not k.startswith("valid")})
            self.record.tested(record)
        self._save()
        if self.main:
            write_json(self.out / "metrics.json", self.record.metrics(self.selection))
        self.reporter.epoch(record, self.vae, self.data.test_x, self.data.test_y)

    def _score(self, test: bool, valid: bool = True) -> dict:
        return score(self.vae, self.data, test, valid, self.main, self.world, self.device)

    def _select(self, record: dict) -> None:
        """Best checkpoint, learning-rate schedule and early stopping, all on the validation
        ELBO; without a validation set, best.pt is the last epoch (and no plateau schedule
        or early stopping runs: :func:`~pyrovae.config.check_selection`)."""
        value, rule = record.get("valid_elbo"), self.selection.rule
        if rule == "valid_elbo" and value is None:
            return
        warming_up = kl_warmup_scale(record["epoch"], self.config.kl_warmup) < 1.0  # no patience counted
        if self.selection.update(record["epoch"], value, record["test_elbo"], warming_up) and self.main:
            save_checkpoint(self.out / "best.pt", self.saved, run_id=self.run.run_id, config=self.config.to_dict(),
                            epoch=record["epoch"],
                            selection={rule: value if rule == "valid_elbo" else record["epoch"]})
        self.schedule.step(value, warming_up)
        if self.selection.stopped_early:
            self.log(f"early stop: no better {rule.replace('_', ' ')} for {self.selection.stale_epochs} epochs; "
                     f"best epoch {self.selection.best['epoch']} (best.pt)")

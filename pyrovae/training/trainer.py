"""A whole training run: data -> VAE -> SVI epochs -> evaluation -> files in ``out``.

:func:`train` starts a run, :func:`resume` continues one from its folder. A run writes:

* ``config.json``: every setting, the resolved preprocessing, library versions, device;
* ``metrics.json``: the data set actually used (with the training rows held out for
  validation), device, per-epoch ``history`` of
  ``{"epoch", "train_elbo", "valid_elbo", "test_elbo", "kl_scale", "lr", "seconds"}``,
  the final ``test_elbo`` (ELBO per datapoint in nats) and the ``best`` epoch,
  rewritten after every epoch;
* ``checkpoint.pt``: weights, optimizer and schedule state, settings, counters, history,
  the unfinished epoch's order and position, and every random state; atomically
  replaced after every epoch and every ``checkpoint_every`` steps, so :func:`resume`
  continues exactly where the run stopped (see :mod:`pyrovae.checkpoint`);
* ``best.pt``: the weights of the epoch with the best validation ELBO (the last epoch's
  with ``valid_size=0``, which leaves no validation set); the test ELBO is reported,
  never used to choose;
* ``elbo_curves.png``, ``reconstructions.png``, ``samples.png``.

SIGINT and SIGTERM end the current step, save ``checkpoint.pt`` and raise
:class:`~pyrovae.errors.Interrupted`, whose message says how to resume. A non-finite
loss raises :class:`~pyrovae.errors.TrainingError` naming the epoch and step, and
leaves the last good checkpoint in place.
"""
import os
import signal
import threading
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import pyro
import torch
from tqdm.auto import tqdm

from ..data.datasets import TRANSFORMS, Dataset, load_dataset
from ..data.prepare import check_shapes, prepare_data, select_data
from ..environment import device_name, select_device, versions
from ..errors import CheckpointError, ConfigError, Interrupted, TrainingError
from ..infer import distributed as ddp
from ..infer.compiled import CompiledSVIStep
from ..infer.elbos import make_elbo
from ..infer.evaluation import elbo, evaluate_elbo
from ..infer.svi import EpochState, SVIStep, kl_warmup_scale, make_optimizer, run_epoch
from ..model.vae import VAE
from .checkpoint import capture_rng, read_checkpoint, remove_stale_temporaries, restore_rng, save_checkpoint, write_json
from .config import TrainConfig, check_selection, make_likelihood
from .plots import image_grid, plot_elbo_curves, plot_reconstructions, plot_samples, reconstruction_grid
from .tracking import TensorBoardLog


def train(config: TrainConfig, log: Callable[[str], None] = print, dataset: Optional[Dataset] = None,
          command: Optional[str] = None, on_epoch_end: Sequence[Callable] = ()) -> dict:
    """Run the training that ``config`` describes and return its metrics.

    ``dataset`` replaces loading ``config.dataset``; ``command`` (the command line that
    started the run) is recorded in ``config.json`` and ``metrics.json``. Each callable
    in ``on_epoch_end`` is called as ``f(epoch, vae, data)`` with the device-resident
    :class:`PreparedData` before the first epoch (``epoch=0``) and after every epoch;
    it must not change the VAE or draw from the global random state."""
    config.validate()
    return _Run(config, log, dataset, command).loop(on_epoch_end)


def resume(run_dir, log: Callable[[str], None] = print, dataset: Optional[Dataset] = None,
           command: Optional[str] = None, epochs: Optional[int] = None, progress: Optional[bool] = None,
           cuda: Optional[bool] = None, distributed: Optional[bool] = None, threads: Optional[int] = None,
           on_epoch_end: Sequence[Callable] = ()) -> dict:
    """Continue the run in ``run_dir`` from its ``checkpoint.pt`` with its own settings
    (``epochs`` may raise the number of epochs; ``progress``, ``cuda``, ``distributed``
    and ``threads`` change only the display, the device, the number of processes and
    the number of CPU threads). Network weights, optimizer and schedule state, counters,
    history, the unfinished epoch and every random state come back, so the resumed run
    is the run that was interrupted."""
    run_dir = Path(run_dir)
    state = read_checkpoint(run_dir / "checkpoint.pt")
    if "loop" not in state:
        raise CheckpointError(f"{run_dir / 'checkpoint.pt'} holds weights only (no training state to resume)")
    config = TrainConfig.from_dict(state["config"])
    config.out = str(run_dir)
    if epochs is not None:
        config.epochs = epochs
    if progress is not None:
        config.progress = progress
    if cuda is not None:
        config.cuda = cuda
    if distributed is not None:
        config.distributed = distributed
    if threads is not None:
        config.threads = threads
    config.validate()
    return _Run(config, log, dataset, command, resume_from=state).loop(on_epoch_end)


class _Run:
    """The state of one run between epochs; :meth:`loop` trains it to the end."""

    def __init__(self, config: TrainConfig, log, dataset: Optional[Dataset], command: Optional[str],
                 resume_from: Optional[dict] = None):
        self.config, self.command = config, command
        if config.threads is not None:
            torch.set_num_threads(config.threads)
        if config.distributed:
            self.rank, self.world, self.device = ddp.setup(config.cuda)
        else:
            self.rank, self.world, self.device = 0, 1, select_device(config.cuda)
        self.main = self.rank == 0  # only rank 0 prints, evaluates and writes files
        self.log = log = log if self.main else (lambda line: None)
        self.out = Path(config.out_dir())
        if self.main:
            _ensure_writable(self.out)
            removed = remove_stale_temporaries(self.out) if resume_from is not None else 0
            if removed:
                log(f"removed {removed} temporary file(s) of an interrupted write in {self.out}")
        pyro.set_rng_seed(config.seed)  # torch (CPU and CUDA), numpy and random: the same on every rank

        if dataset is None:
            dataset = load_dataset(config.dataset, config.data_dir, config.download, log)
        self.dataset = select_data(config, dataset)
        if len(self.dataset.train_x) == 0 or len(self.dataset.test_x) == 0:
            raise ConfigError(f"{self.dataset.name} has no training or no test examples after the limits")
        check_shapes(self.dataset)
        likelihood = make_likelihood(config)
        self.data = prepare_data(config, self.dataset, likelihood).to(self.device)  # the one host-to-device copy
        check_selection(config, has_validation=self.data.valid_x is not None)
        self.selection = "valid_elbo" if self.data.valid_x is not None else "last_epoch"

        self.vae = VAE(self.dataset.x_dim, config.z_dim, config.hidden, likelihood, arch=config.arch,
                       image_shape=self.dataset.image_shape, channels=config.channels).to(self.device)
        self.elbo = make_elbo(config.elbo, config.num_particles)
        self.optimizer = make_optimizer(self.vae.parameters(), config.lr)
        self.scheduler = _make_scheduler(config, self.optimizer)
        if config.distributed:
            self.step = ddp.DistributedSVIStep(self.vae, self.elbo, self.optimizer, len(self.data.train_x),
                                                       self.rank, self.world)
            ddp.broadcast_parameters(self.vae)
        elif config.fast:
            self.step = CompiledSVIStep(self.vae, self.elbo, self.optimizer, log=log)
        else:
            self.step = SVIStep(self.vae, self.elbo, self.optimizer)
        self.transform = TRANSFORMS[self.data.transform]

        shown = device_name(self.device) if self.world == 1 else f"{self.world} x {device_name(self.device)}"
        self.metrics = {"command": command, "dataset": self.dataset.summary(), "device": shown,
                        "elbo": config.elbo, "likelihood": likelihood.config(), "history": [], "test_elbo": None,
                        "test_elbo_estimator": "TraceMeanField_ELBO (analytic KL), 1 particle",
                        "selection": self.selection, "best": None, "stopped_early": False, "resumes": []}
        self.global_step, self.epoch, self.stale_epochs = 0, 0, 0
        self.epoch_state: Optional[EpochState] = None
        self.epoch_seconds = 0.0
        if resume_from is None:
            self._write_config()
            self.log(f"{self.dataset.name} ({self.dataset.source}): {len(self.data.train_x)} train / "
                     + (f"{len(self.data.valid_x)} valid / " if self.data.valid_x is not None else "")
                     + f"{len(self.data.test_x)} test; {likelihood!r}, {config.arch}, "
                     f"{type(self.elbo).__name__} x{config.num_particles}, minibatch transform: {self.data.transform}; "
                     f"device {self.metrics['device']}")
        else:
            self._restore(resume_from)
        self.tensorboard = (TensorBoardLog(self.out / "tensorboard", self.epoch)
                            if config.tensorboard and self.main else None)

    # ------------------------------------------------------------------ state
    def _write_config(self) -> None:
        if not self.main:
            return
        write_json(self.out / "config.json", {
            "command": self.command,
            "settings": self.config.to_dict(),
            "resolved": {"binarize": self.data.binarize, "dequantize": self.data.dequantize,
                         "minibatch_transform": self.data.transform,
                         "elbo_class": f"{type(self.elbo).__module__}.{type(self.elbo).__name__}",
                         "optimizer": f"Adam{' (fused)' if self.optimizer.defaults.get('fused') else ''}",
                         "selection": self.selection, "out": str(self.out)},
            "device": self.metrics["device"],
            "world_size": self.world,
            "versions": versions(self.device),
        })

    def _state(self) -> dict:
        return {"loop": {"epoch": self.epoch, "global_step": self.global_step, "stale_epochs": self.stale_epochs,
                         "epoch_seconds": self.epoch_seconds,
                         "epoch_state": None if self.epoch_state is None else self.epoch_state.state_dict()},
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                "metrics": self.metrics, "rng": capture_rng(),
                "config": self.config.to_dict(), "epoch": self.epoch, "history": self.metrics["history"]}

    def _restore(self, state: dict) -> None:
        try:
            self.vae.load_state_dict(state["state_dict"])
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
        except (RuntimeError, KeyError, ValueError) as error:
            raise CheckpointError(f"the checkpoint in {self.out} does not match its own settings: "
                                  f"{' '.join(str(error).split())[:200]}") from None
        if not self.dataset.matches(state["metrics"]["dataset"]):
            raise ConfigError(f"the run was trained on {state['metrics']['dataset']}, but "
                              f"{self.metrics['dataset']} loads now; resume with the same data")
        loop = state["loop"]
        self.epoch, self.global_step, self.stale_epochs = loop["epoch"], loop["global_step"], loop["stale_epochs"]
        self.epoch_seconds = loop["epoch_seconds"]
        if loop["epoch_state"] is not None:
            self.epoch_state = EpochState.from_state_dict(loop["epoch_state"], self.device)
        self.metrics = state["metrics"]
        self.metrics["resumes"].append({"epoch": self.epoch, "global_step": self.global_step, "command": self.command})
        restore_rng(state["rng"])
        where = (f"epoch {self.epoch + 1}, minibatch {self.epoch_state.position}" if self.epoch_state is not None
                 else f"the end of epoch {self.epoch}")
        self.log(f"resuming {self.out} at {where} (step {self.global_step})")

    def _save(self) -> None:
        if self.main:
            save_checkpoint(self.out / "checkpoint.pt", self.vae, self.optimizer, **self._state())

    def _stop_agreed(self, stop: "_StopSignals", now: bool = False) -> bool:
        """Whether to stop for a signal. Alone: as soon as one came. Distributed: when any
        rank has one, read from the votes the gradient all_reduce carries, every 25 steps
        and at epoch ends (``now``), so that every rank stops after the same step."""
        if self.world == 1:
            return stop.signal is not None
        self.step.stop_requested = stop.signal is not None
        if now or self.global_step % 25 == 0:
            return self.step.stop_votes is not None and float(self.step.stop_votes) > 0
        return False

    def _check_finite(self, state: EpochState) -> None:
        first_bad = int(state.first_bad)  # host read: at checkpoints and epoch ends only
        if first_bad >= 0:
            step = self.global_step - state.position + first_bad + 1
            raise TrainingError(f"the loss is not finite in epoch {self.epoch + 1} at minibatch {first_bad + 1} "
                                f"(step {step}); lower --lr (now {self.config.lr}) or check the data; "
                                f"the last good checkpoint is in {self.out}")

    # ------------------------------------------------------------------- loop
    def loop(self, on_epoch_end: Sequence[Callable]) -> dict:
        config = self.config
        if self.epoch == 0 and self.epoch_state is None:
            for callback in on_epoch_end:
                callback(0, self.vae, self.data)
        try:
            with _StopSignals() as stop:
                while self.epoch < config.epochs and not self.metrics["stopped_early"]:
                    self._train_one_epoch(stop)
                    for callback in on_epoch_end:
                        callback(self.epoch, self.vae, self.data)
                    if self._stop_agreed(stop, now=True):
                        self._interrupted(stop.signal)
            if self.main:
                self._write_figures()
        except BaseException:
            if config.distributed:
                ddp.teardown(wait=False)  # the other ranks may never get here
            raise
        finally:
            if self.tensorboard is not None:
                self.tensorboard.close()
        if config.distributed:
            ddp.teardown()
        self.log(f"final test ELBO {self.metrics['test_elbo']:.3f} nats per datapoint; wrote {self.out}/")
        return self.metrics

    def _train_one_epoch(self, stop: "_StopSignals") -> None:
        config = self.config
        epoch = self.epoch + 1
        beta = kl_warmup_scale(epoch, config.kl_warmup)
        kl_scale = None if beta == 1.0 else torch.tensor(beta, device=self.device)
        if self.epoch_state is None:
            self.epoch_state, self.epoch_seconds = EpochState.start(len(self.data.train_x), self.device), 0.0
        state = self.epoch_state
        start = time.perf_counter()

        def after_step(state):
            self.global_step += 1
            if config.checkpoint_every and self.global_step % config.checkpoint_every == 0:
                self._check_finite(state)
                self.epoch_seconds += time.perf_counter() - start_of_span[0]
                start_of_span[0] = time.perf_counter()
                self._save()
            return self._stop_agreed(stop)

        start_of_span = [start]
        batch = config.batch_size
        with tqdm(total=len(self.data.train_x), initial=min(len(self.data.train_x), state.position * batch),
                  desc=f"epoch {epoch}/{config.epochs}", unit="img", disable=not config.progress, leave=False) as bar:
            self.vae.train()
            finished = run_epoch(self.step, self.data.train_x, state, batch, self.transform, kl_scale,
                                 validate_first_step=self.global_step == 0, progress=bar, after_step=after_step)
        self._check_finite(state)
        self.epoch_seconds += time.perf_counter() - start_of_span[0]
        if not finished:  # a signal: save the unfinished epoch and stop
            self._save()
            self._interrupted(stop.signal)

        train_elbo = -float(state.total) / len(self.data.train_x)  # one host read per epoch
        record = {"epoch": epoch, "train_elbo": train_elbo,
                  **self._evaluate(epoch % config.test_frequency == 0 or epoch == config.epochs),
                  "kl_scale": beta, "lr": self.optimizer.param_groups[0]["lr"], "seconds": self.epoch_seconds}
        self.epoch, self.epoch_state = epoch, None
        self.metrics["history"].append(record)
        if record["test_elbo"] is not None:
            self.metrics["test_elbo"] = record["test_elbo"]
        self.metrics["svi_step"] = getattr(self.step, "mode", "eager")
        self.log(f"epoch {epoch:3d}  train {'objective' if beta < 1 else 'ELBO'} {train_elbo:9.3f}  "
                 + (f"valid ELBO {record['valid_elbo']:9.3f}  " if "valid_elbo" in record else "")
                 + (f"test ELBO {record['test_elbo']:9.3f}  " if record["test_elbo"] is not None else "")
                 + (f"(beta {beta:.3f}) " if beta < 1 else "") + f"({self.epoch_seconds:.1f} s)")
        self._select(record)
        if self.metrics["stopped_early"] and record["test_elbo"] is None:  # the last epoch is always tested
            record.update({k: v for k, v in self._evaluate(test=True, valid=False).items() if k != "valid_elbo"})
            self.metrics["test_elbo"] = record["test_elbo"]
        self._save()
        if self.main:
            write_json(self.out / "metrics.json", self.metrics)
        if self.tensorboard is not None:
            self.tensorboard.epoch(record)
            if record["test_elbo"] is not None:
                self.tensorboard.images(epoch, *self._figures())

    def _evaluate(self, test: bool, valid: bool = True) -> dict:
        """The validation ELBO, and with ``test`` the test ELBO and its split, from rank 0
        (which in a distributed run leaves the ranks' common random stream alone)."""
        keys = ["valid_elbo", "test_elbo", "test_expected_log_likelihood", "test_kl"]
        values = dict.fromkeys(keys)
        if self.main:
            self.vae.eval()
            with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else [],
                                       enabled=self.world > 1):
                if self.data.valid_x is not None and valid:
                    values["valid_elbo"] = evaluate_elbo(self.vae, self.data.valid_x)
                if test:
                    split = elbo(self.vae, self.data.test_x, num_particles=1, analytic_kl=True).means()
                    values.update(test_elbo=split["elbo"], test_expected_log_likelihood=split["expected_log_likelihood"],
                                  test_kl=split["kl"])
        if self.world > 1:
            values = dict(zip(keys, ddp.broadcast_values([values[k] for k in keys], self.device)))
        if self.data.valid_x is None:
            del values["valid_elbo"]
        return values

    def _select(self, record: dict) -> None:
        """Best checkpoint, learning-rate schedule and early stopping, all on the validation
        ELBO; without a validation set, best.pt is the last epoch (and no plateau schedule
        or early stopping runs: :func:`~pyrovae.config.check_selection`). The test ELBO
        is recorded in ``best`` and never compared."""
        value = record.get("valid_elbo")
        if self.selection == "valid_elbo" and value is None:
            return
        best = self.metrics["best"]
        warming_up = record["kl_scale"] < 1.0  # the objective still changes: no patience counted
        if self.selection == "last_epoch" or best is None or best.get("valid_elbo") is None or value > best["valid_elbo"]:
            self.metrics["best"] = {"epoch": record["epoch"], "test_elbo": record["test_elbo"],
                                    "valid_elbo": record.get("valid_elbo")}
            if self.main:
                save_checkpoint(self.out / "best.pt", self.vae, config=self.config.to_dict(), epoch=record["epoch"],
                                selection={self.selection: value if self.selection == "valid_elbo" else record["epoch"]})
            self.stale_epochs = 0
        elif not warming_up:
            self.stale_epochs += 1
        if isinstance(self.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            if not warming_up:
                self.scheduler.step(value)
        elif self.scheduler is not None:
            self.scheduler.step()
        if self.config.early_stopping and self.stale_epochs >= self.config.early_stopping:
            self.metrics["stopped_early"] = True
            self.log(f"early stop: no better {self.selection.replace('_', ' ')} for {self.stale_epochs} epochs; "
                     f"best epoch {self.metrics['best']['epoch']} (best.pt)")

    def _interrupted(self, signum: Optional[int]) -> None:
        signum = signum or signal.SIGTERM  # a rank stopping on another rank's signal
        name = signal.Signals(signum).name
        raise Interrupted(f"{name}: stopped after step {self.global_step} and saved {self.out / 'checkpoint.pt'}; "
                          f"resume with: python scripts/svi_train.py --resume {self.out}", 128 + signum)

    def _figure_data(self):
        """(originals, reconstructions, samples): 50 test images spread over the whole
        (possibly class-sorted) test set, their reconstructions, 100 decoded prior draws."""
        vae, test_x = self.vae.eval(), self.data.test_x
        originals = test_x[torch.linspace(0, len(test_x) - 1, min(50, len(test_x)), device=test_x.device).long()]
        generator = torch.Generator(device=test_x.device).manual_seed(0)
        return originals, vae.reconstruct(originals), vae.sample(100, generator=generator)

    def _figures(self):
        """The reconstruction and sample mosaics that TensorBoard shows."""
        originals, reconstructions, samples = self._figure_data()
        shape = self.dataset.image_shape
        return reconstruction_grid(originals, reconstructions, shape), image_grid(samples, shape, 10)

    def _write_figures(self) -> None:
        shape = self.dataset.image_shape
        plot_elbo_curves(self.metrics["history"], self.out / "elbo_curves.png",
                         f"{self.dataset.name}, {self.vae.likelihood.name}, {self.config.elbo}")
        originals, reconstructions, samples = self._figure_data()
        plot_reconstructions(originals, reconstructions, shape, self.out / "reconstructions.png")
        plot_samples(samples, shape, self.out / "samples.png")


def _make_scheduler(config: TrainConfig, optimizer):
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs, eta_min=config.lr_min)
    if config.lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5,
                                                          patience=config.lr_patience, min_lr=config.lr_min)
    return None


class _StopSignals:
    """Within the context, SIGINT and SIGTERM set ``signal`` instead of killing the
    process (the loop saves and stops at the next step); a second one acts as usual.
    Outside the main thread, signals are left alone."""

    def __init__(self):
        self.signal: Optional[int] = None
        self._previous = {}

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


def _ensure_writable(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ConfigError(f"cannot write to the output folder {out} ({error.strerror}); "
                          "choose another with --out") from None


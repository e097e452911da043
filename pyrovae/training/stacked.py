r"""M1+M2 runs (``--model m1m2 --m1-run RUN``): the VAE (M1) of a finished ``vae`` run, checked and
copied into the new run, and the rows M2 learns from, M1's posterior means.

A new run takes M1 from ``best.pt`` of the run in ``--m1-run`` (opened as a reader, under its lock),
refusing in one line a run that is not a ``vae`` run, one that has not finished its epochs, one
trained on other data (its data set's origin, name, path or content hash, its test split, image
shape or grey levels differ from those of the rows this run asks for) and a checkpoint that is not
that run's own (:meth:`~pyrovae.training.run.Run.checkpoint`). ``config.json`` records where M1
came from under ``m1``: the run's folder and ``run_id``, the checkpoint, its epoch and its sha256.
M1's weights are part of every checkpoint of the run (``m1.*``), so the run stands alone: a resume,
``evaluate.py``, ``encode.py``, ``plot_latent.py`` and :func:`pyrovae.load` never open the M1 run.

The features (:func:`features`) are M1's encoder means of the run's training, validation and test
rows, computed once, :data:`CHUNK` rows at a time; M2 trains on them with the columns standardized
by the training rows' means and standard deviations (:func:`~pyrovae.data.prepare.prepare_data`).
"""
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import torch

from ..data.datasets import Dataset
from ..data.selection import first_difference
from ..data.splits import sha256_file
from ..errors import ConfigError, DataError
from ..model.m1m2 import M1M2
from ..model.vae import VAE
from .checkpoint import model_from_state
from .run import Run
from .rundata import describe_data

#: rows M1 encodes at a time
CHUNK = 4096
#: what the data of the M1 run and of the new run must agree in (keys of the data's summary)
SAME_DATA = ("origin", "split", "image_shape", "levels")


class Stack:
    """The M1 of an ``m1m2`` run: ``m1`` (frozen), and for a new run where it came from (``provenance``)."""

    def __init__(self, m1: VAE, provenance: Optional[dict] = None):
        self.m1, self.provenance = m1, provenance

    @classmethod
    def of_run(cls, config, dataset: Dataset, resume_from: Optional[dict] = None,
               log: Callable[[str], None] = print) -> Optional["Stack"]:
        """None for a run of another model; a resumed run's M1 from its own checkpoint, a new run's
        from ``config.m1_run`` (:func:`m1_of_run`, checked against ``dataset``, the run's rows)."""
        if config.model != "m1m2":
            return None
        with torch.random.fork_rng(devices=[]):  # building M1 draws initial weights: the run's stream is left alone
            if resume_from is not None:
                return cls(model_from_state(resume_from, Path(config.out_dir()) / "checkpoint.pt").m1)
            m1, provenance = m1_of_run(config.m1_run, dataset)
        log(f"m1m2: M1 is {provenance['run']}/{provenance['checkpoint']} (epoch {provenance['epoch']}, z "
            f"{m1.z_dim}); M2 learns from its posterior means")
        return cls(m1, provenance)

    def rows(self, dataset: Dataset) -> Dataset:
        """The rows M2 learns from: :func:`features` of ``dataset``."""
        return features(self.m1, dataset)

    def prepared(self, config):
        """The settings that prepare M2's rows: columns standardized, nothing else."""
        return replace(config, binarize="none", dequantize="none", standardize="columns")

    def wrap(self, m2) -> M1M2:
        """The model a checkpoint holds: M1 (on M2's device) and the M2 being trained (the same modules)."""
        return M1M2.join(self.m1.to(next(m2.parameters()).device), m2)


def m1_of_run(folder, dataset: Dataset):
    """(M1, provenance): the model of ``best.pt`` of the finished vae run in ``folder``, trained on the
    data of ``dataset`` (module docstring), and its run's folder, run id, checkpoint, epoch and sha256."""
    folder = Path(folder)
    with Run.open(folder) as run:  # a reader: no one writes the run while it is read
        kind = run.record["settings"].get("model", "vae")
        if kind != "vae":
            raise ConfigError(f"--m1-run {folder} holds a {kind} run; M1 is a finished vae run (--model vae)")
        history, epochs = run.metrics().get("history") or [], run.config.epochs
        if not (run.metrics().get("stopped_early") or len(history) >= epochs) or not (folder / "best.pt").is_file():
            raise ConfigError(f"--m1-run {folder} has not finished: {len(history)} of its {epochs} epochs; finish it "
                              f"with --resume {folder}, or give a finished vae run")
        check_same_data(run.trained_on(), dataset.summary(), folder)
        path = run.path("best")
        state = run.checkpoint("best")
        m1 = run.model("best", state=state)
        digest = sha256_file(path)
        provenance = {"run": str(folder.resolve()), "run_id": run.run_id, "checkpoint": path.name,
                      "epoch": state.get("epoch"), "sha256": digest}
    if type(m1) is not VAE:
        raise ConfigError(f"--m1-run {folder} holds a {m1.kind} model; M1 is a finished vae run (--model vae)")
    return m1, provenance


def check_same_data(m1_data: dict, ours: dict, folder) -> None:
    """Refuse, in one line naming what differs, an M1 trained on other data than ``ours`` (summaries)."""
    a = {k: m1_data[k] for k in SAME_DATA if k in m1_data}
    b = {k: ours[k] for k in SAME_DATA if k in ours}
    differs = first_difference(b, a, ignored=("split.given",)) or first_difference(a, b, ignored=("split.given",))
    if differs:
        raise DataError(f"--m1-run {folder} was trained on {describe_data(m1_data)}, but this run asks for "
                        f"{describe_data(ours)} (its {differs} differs); give an M1 trained on the same data")


@torch.no_grad()
def features(m1: VAE, dataset: Dataset) -> Dataset:
    """M1's posterior means (``loc`` of q(z|x)) of every training, validation and test row of ``dataset``,
    with the rows' labels (-1 where hidden): a table of ``m1.z_dim`` columns, on the CPU."""
    m1 = m1.cpu().eval()

    def means(x):
        return None if x is None else torch.cat([m1.encode(c)[0] for c in x.split(CHUNK)]).numpy()

    label = lambda y: None if y is None else y.numpy()  # noqa: E731
    rows = Dataset.from_arrays(means(dataset.train_x), means(dataset.test_x), means(dataset.valid_x),
                               train_y=label(dataset.train_y), test_y=label(dataset.test_y), name=f"{dataset.name}-m1")
    rows.valid_y, rows.classes = dataset.valid_y, dataset.classes  # the validation rows' labels: their accuracy
    return rows


def run_features(run_dir, dataset: Optional[Dataset] = None, log: Callable[[str], None] = print):
    """(model, features): the model of ``best.pt`` of the m1m2 run in ``run_dir`` and the rows its M2
    learned from (:func:`features` of the run's own data; ``dataset``: the data, where the run was given
    them in Python), for a study that scores M2 beside other classifiers on the same rows."""
    with Run.open(run_dir) as run:
        if run.config.model != "m1m2":
            raise ConfigError(f"{run_dir} holds a {run.config.model} run, not an m1m2 run")
        model = run.model("best")
        return model, features(model.m1, run.dataset(dataset, log=log))

r"""The trained guide of a run over a data set (``scripts/encode.py``): latents and scores per row.

:func:`encode_run` opens the run folder through :class:`~pyrovae.training.run.Run` (its
lock, shared; a checkpoint of its own: ``best.pt`` where the run kept one, else
``checkpoint.pt``), reads the rows through :func:`read_rows` and writes them with
:func:`pyrovae.encode_dataset`.

The data set ``DATA`` is a ``.npy`` file (memory-mapped; (N, D) or image-shaped; uint8 read as
x/255, bool, or float in the data's units; pickled arrays refused), or a keyword naming the
run's own data: ``test``, ``train`` (the run's training rows, without the validation rows) or
``all`` (training, validation, test, in that order; ``info`` in the file gives the ranges).

Preprocessing, as the run scored its held-out data (``config.json`` "resolved"): ``loc`` and
``scale`` are computed on the rows as given (a Bernoulli run on grey digits encodes the grey
digit: deterministic latents, the usual choice); the scores (``elbo``, ``log_px``) see what
the likelihood scores: one fixed Bernoulli draw per pixel (binarize ``static``/``dynamic``) or
fixed uniform dequantization noise, drawn from ``torch.Generator(TEST_SET_SEED)`` for the test
rows and for a ``.npy``, ``TEST_SET_SEED + 1`` for validation rows (exactly the draws of
:func:`~pyrovae.data.prepare.prepare_data`, so ``test`` reproduces the run's test ELBO up to Monte
Carlo), and for training rows the run's own seed under static binarization, else ``TEST_SET_SEED``.
"""
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional

import numpy as np
from tqdm.auto import tqdm

from ..data.prepare import TEST_SET_SEED, check_rows
from ..data.selection import limit_rows
from ..environment import select_device
from ..errors import DataError, Interrupted
from ..infer.encoding import _check_out, encode_dataset, held_out_transform
from ..training.run import Run

#: keywords of DATA naming the run's own data set
KEYWORDS = ("test", "train", "all")


@dataclass
class Rows:
    """What to encode: blocks of rows read one after another, with per-block preprocessing for
    the scores and labels (None where unknown), and how they were found (for ``info``)."""

    blocks: list
    preprocess: list
    labels: list
    parts: List[dict] = field(default_factory=list)
    source: str = ""
    row_ids: list = field(default_factory=list)  # per block, the rows' places in the source (empty: 0..N-1)


def read_rows(spec: str, run: Run, log: Callable[[str], None] = print) -> Rows:
    """The rows named by ``spec`` (a keyword of :data:`KEYWORDS`, a ``.npy`` path read chunk by
    chunk, or any other source :func:`pyrovae.load_dataset` reads, whole: every row of it, its
    training rows then its test rows, ``row`` giving each one's place in the source), with the
    preprocessing of the open ``run`` (``config.json`` "resolved") for scoring."""
    resolved, settings = run.record.get("resolved") or {}, run.record["settings"]
    seed = int(settings.get("seed", 0))
    transform = lambda s: held_out_transform(resolved.get("binarize", "none"), resolved.get("dequantize", "none"),  # noqa: E731
                                             s, resolved.get("levels"))
    if spec in KEYWORDS:
        dataset = run.dataset(log=log)  # the run's own data, checked against what it was trained on
        train_seed = seed if resolved.get("binarize") == "static" else TEST_SET_SEED
        named = {"train": (dataset.train_x, dataset.train_y, train_seed),
                 "valid": (dataset.valid_x, dataset.valid_y, TEST_SET_SEED + 1),
                 "test": (dataset.test_x, dataset.test_y, TEST_SET_SEED)}
        names = ["train", "valid", "test"] if spec == "all" else [spec]
        names = [name for name in names if named[name][0] is not None]
        rows = Rows([], [], [], source=f"the run's {spec} data ({dataset.name})")
        places, rows_are = _places(dataset)
        limits = dataset.limits or {}
        start = 0
        for name in names:
            x, y, s = named[name]
            rows.blocks.append(x)
            rows.labels.append(y)
            rows.preprocess.append(transform(s))
            kept = limit_rows(len(places[name]), limits.get("train" if name == "train" else "test"),
                              limits.get("rule", "first"))  # the rows the run's limits kept
            rows.row_ids.append(places[name] if kept is None else places[name][kept.numpy()])
            rows.parts.append({"part": name, "rows": [start, start + len(x)], "preprocess_seed": s,
                               "row_is": rows_are[name]})
            start += len(x)
        return rows
    path = Path(spec)
    if path.suffix != ".npy":
        return _source_rows(spec, settings, transform(TEST_SET_SEED), log)
    if not path.is_file():
        raise DataError(f"{path} does not exist")
    from ..data.sources import read_npy

    array = read_npy(path)  # memory-mapped, read chunk by chunk; no pickle, a NumPy header checked first
    return Rows([array], [transform(TEST_SET_SEED)], [None],
                [{"part": "file", "rows": [0, len(array)], "preprocess_seed": TEST_SET_SEED}], str(path.resolve()))


def _places(dataset):
    """({part: row indices}, {part: what they index}) of a run's data: rows of the source for a
    seeded split, else rows of the source's own training (and validation) and test splits, whole
    (before the run's limits, which :func:`read_rows` applies to them)."""
    from ..data.splits import seeded_split

    held = dataset.held_out or {}
    size = {part: len(x) for part, x in (("train", dataset.train_x), ("test", dataset.test_x),
                                         ("valid", dataset.valid_x)) if x is not None}
    size.update(dataset.unlimited or {})  # the parts' rows before the limits
    n_train = size["train"] + (size["valid"] if held else 0)
    if dataset.split is not None and "test_rows" in dataset.split:
        train, test, _ = seeded_split(dataset.split["of"], dataset.split["test_size"], dataset.split["seed"])
        keep = held.get("first_row", len(train))
        return {"train": train[:keep], "valid": train[keep:], "test": test}, dict.fromkeys(("train", "valid", "test"),
                                                                                          "a row of the source")
    if "valid_rows" in held:
        valid = np.asarray(held["valid_rows"], dtype=np.int64)
        train = np.setdiff1d(np.arange(held["of"]), valid)
    else:
        keep = held.get("first_row", n_train)
        train, valid = np.arange(keep), np.arange(keep, held.get("of", keep))
    own_valid = dataset.valid_x is not None and not held
    return ({"train": train, "valid": np.arange(size["valid"]) if own_valid else valid, "test": np.arange(size["test"])},
            {"train": "a row of the source's training split", "test": "a row of the source's test split",
             "valid": "a row of the source's " + ("validation" if own_valid else "training") + " split"})


def _source_rows(spec: str, settings: Optional[dict], preprocess, log) -> Rows:
    """Every row of a data set name, file or folder: (training rows, then test rows) with their
    places in the source (for a seeded split, the split's own row indices)."""
    from ..data.datasets import load_dataset
    from ..data.splits import seeded_split

    settings = settings or {}
    same = str(spec) == str(settings.get("dataset"))  # the run's own source: its split; another: the default one
    resized = Path(spec).is_dir() or spec == "celeba"  # what --image-size applies to
    dataset = load_dataset(spec, settings.get("data_dir", "./data"), download=False, log=log,
                           image_size=settings.get("image_size") if resized else None,
                           test_size=settings.get("test_size") if same else None,
                           split_seed=settings.get("split_seed", 0) if same else 0,
                           label_column=settings.get("label_column") if same else None)
    parts = [("train", dataset.train_x, dataset.train_y), ("valid", dataset.valid_x, None),
             ("test", dataset.test_x, dataset.test_y)]
    parts = [part for part in parts if part[1] is not None]
    if dataset.split is not None:  # rows of the seeded split: their places in the source
        train_rows, test_rows, _ = seeded_split(dataset.split["of"], dataset.split["test_size"], dataset.split["seed"])
        places = {"train": train_rows, "test": test_rows}
    else:
        places, start = {}, 0
        for name, x, _ in parts:
            places[name], start = np.arange(start, start + len(x)), start + len(x)
    rows = Rows([], [], [], source=f"{dataset.name} ({dataset.source})")
    start = 0
    for name, x, y in parts:
        rows.blocks.append(x)
        rows.labels.append(y)
        rows.preprocess.append(preprocess)
        rows.row_ids.append(places[name])
        rows.parts.append({"part": name, "rows": [start, start + len(x)], "preprocess_seed": TEST_SET_SEED})
        start += len(x)
    return rows


def encode_run(run_dir, data: str, out, cuda: bool = False, batch_size: int = 1024, score: bool = False,
               num_samples: int = 0, num_particles: int = 10, checkpoint: Optional[str] = None,
               progress: bool = False, log: Callable[[str], None] = print, command: Optional[str] = None) -> dict:
    """Encode ``data`` (see :func:`read_rows`) with the guide of the run in ``run_dir`` into
    ``out`` (.npz); the summary of :func:`pyrovae.encode_dataset`."""
    out = _check_out(out)  # before anything slow
    with Run.open(run_dir) as run:  # a reader: the run's lock, shared
        device = select_device(cuda)
        vae = run.model(checkpoint, device)
        rows = read_rows(data, run, log)
        return _encode(run, run.path(checkpoint).name, vae, rows, out, device, batch_size, score, num_samples,
                       num_particles, progress, log, command)


def _encode(run, checkpoint, vae, rows, out, device, batch_size, score, num_samples, num_particles, progress, log,
            command):
    resolved, run_dir = run.record.get("resolved") or {}, run.folder
    n = sum(len(b) for b in rows.blocks)
    scores = (", ELBO" if score else "") + (f", log p(x) with K={num_samples}" if num_samples else "")
    log(f"encoding {n} rows of {rows.source} with {run_dir / checkpoint} on {device}{scores}")
    info = {"run_dir": str(run_dir.resolve()), "checkpoint": checkpoint, "data": rows.source, "parts": rows.parts,
            "preprocess": {k: resolved.get(k) for k in ("binarize", "dequantize", "levels") if k in resolved},
            "command": command}
    if vae.standardizer is not None:  # elbo and log_px score the standardized row; its own units: minus sum log std
        info["score_units"] = {"of": "standardized columns, (x - mean) / std of the training rows",
                               "sum_log_std": vae.log_det_standardization()}
    elif getattr(vae, "score_units", None):  # a model that scores something else than its rows (m1m2)
        info["score_units"] = {"of": vae.score_units}
    bar = _Bar(n, progress)
    with bar, _sigterm_interrupts(out):
        summary = encode_dataset(vae, rows.blocks, out, batch_size=batch_size, score=score, num_samples=num_samples,
                                 num_particles=num_particles, preprocess=rows.preprocess, labels=rows.labels,
                                 progress=bar.update, info=info, check=_as_training_checks(resolved, vae),
                                 row_ids=np.concatenate(rows.row_ids) if rows.row_ids else None)
    means = "".join(f", mean {k[5:]} {v:.3f}" for k, v in summary.items() if k.startswith("mean_"))
    log(f"wrote {out}: {', '.join(summary['arrays'])} for {n} rows in {summary['seconds']:.1f} s{means}")
    return summary


def _as_training_checks(resolved: dict, vae):
    """The run's training refusals (:func:`~pyrovae.data.prepare.check_rows`) for chunks of rows in data units."""
    binarize, dequantize = resolved.get("binarize", "none"), resolved.get("dequantize", "none")
    return lambda x, what: check_rows(x, what, binarize, dequantize, vae.likelihood, vae.to_model_space)


class _Bar:
    """A tqdm bar over rows that appears with the first finished chunk, so that input refused
    before any row is encoded prints nothing but its one error line."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.bar = total, enabled, None

    def update(self, n: int) -> None:
        if self.enabled and self.bar is None:
            self.bar = tqdm(total=self.total, desc="encode", unit="row")
        if self.bar is not None:
            self.bar.update(n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        return False


class _sigterm_interrupts:
    """Ctrl-C and SIGTERM stop the encoding with one line (nothing was written to ``out``)."""

    def __init__(self, out: Path):
        self.out, self.previous = out, None

    def _stop(self, signum, frame):
        raise Interrupted(f"interrupted; nothing was written to {self.out}", 128 + signum)

    def __enter__(self):
        try:
            self.previous = signal.signal(signal.SIGTERM, self._stop)
        except ValueError:  # not the main thread: leave signals alone
            self.previous = None
        return self

    def __exit__(self, kind, error, traceback):
        if self.previous is not None:
            signal.signal(signal.SIGTERM, self.previous)
        if kind is KeyboardInterrupt:
            raise Interrupted(f"interrupted; nothing was written to {self.out}", 130) from None
        return False

"""The data of a run: loaded from its source (or given in Python), selected, and checked to
be the data the run was trained on when a run is resumed, evaluated or encoded.

A run records :meth:`~pyrovae.data.datasets.Dataset.summary` in ``metrics.json`` and in
its checkpoint: the source (a name, or a path with the sha256 of its contents, or the hash
of arrays given in Python), the sizes, the rows of the seeded test split and of the
validation hold-out. :func:`run_dataset` reloads that source and refuses, in one line,
anything that does not match it.
"""
from typing import Callable, Optional

from ..data.datasets import Dataset, load_dataset
from ..data.prepare import select_data
from ..errors import DataError


def run_dataset(config, dataset: Optional[Dataset] = None, log: Callable[[str], None] = print,
                recorded: Optional[dict] = None, download: Optional[bool] = None) -> Dataset:
    """The examples of the run ``config`` describes: ``dataset`` (given in Python) or the
    source ``config.dataset`` loaded, then :func:`~pyrovae.data.prepare.select_data`.

    With ``recorded`` (the data summary of an existing run), data that is not the run's is
    refused: arrays given in Python cannot be reloaded from the settings, so without
    ``dataset`` that is one line saying how to pass them again."""
    origin = (recorded or {}).get("origin") or {}
    if dataset is None:
        if origin.get("kind") == "arrays":
            raise DataError(f"the run was trained on data given in Python ({describe_data(recorded)}); "
                            "continue or evaluate it from Python with dataset=<the same pyrovae.Dataset>")
        dataset = load_dataset(config.dataset, config.data_dir, download=config.download if download is None else download,
                               log=log, image_size=config.image_size, test_size=config.test_size,
                               split_seed=config.split_seed, label_column=config.label_column)
    elif recorded is None:
        _record_source(config, dataset)
    selected = select_data(config, dataset)
    if recorded is not None and not selected.matches(recorded):
        now = selected.summary()
        differs = selected.mismatch(recorded) or "?"
        raise DataError(f"the run was trained on {describe_data(recorded)}, but {describe_data(now)} loads now "
                        f"(its {differs} differs); give the run the data it was trained on")
    return selected


def describe_data(summary: dict) -> str:
    """A data summary in a few words: name, source file and hash, sizes."""
    origin = summary.get("origin") or {}
    where = origin.get("path") or summary.get("source", "")
    digest = origin.get("sha256")
    sizes = f"{summary.get('num_train', '?')} train / {summary.get('num_test', '?')} test"
    return (f"{summary.get('name', 'data')} ({where}" + (f", sha256 {digest[:12]}" if digest else "")
            + f", {sizes})")


def _record_source(config, dataset: Dataset) -> None:
    """A new run on a data set given in Python that came from a name or a file: the settings
    name that source (and its split), so ``--resume`` and ``evaluate.py`` load it again."""
    origin = dataset.origin or {}
    if config.out is None:
        config.out = config.out_dir()  # the folder named after the settings as given
    if origin.get("kind") == "name":
        config.dataset = origin["name"]
    elif origin.get("kind") in ("file", "folder"):
        config.dataset = origin["path"]
    else:
        return
    config.image_size = origin.get("image_size", config.image_size)
    if dataset.split is not None and "test_rows" in dataset.split:
        config.test_size, config.split_seed = dataset.split["test_size"], dataset.split["seed"]

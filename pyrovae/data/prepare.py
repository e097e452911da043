"""What a run trains and is scored on: the examples it uses (:func:`select_data`), and
their preprocessing for the chosen likelihood (:func:`prepare_data` -> :class:`PreparedData`).
Both read a run's settings (a :class:`~pyrovae.training.config.TrainConfig`, or any object with
the fields of :class:`SelectionSettings` and :class:`PreprocessingSettings`); data/ imports
nothing from training/.
"""
import math
from dataclasses import dataclass, replace
from typing import Optional, Protocol

import torch

from ..errors import ConfigError, DataError
from .arrays import detect_levels
from .dataset import Dataset
from .transforms import binarize, dequantize, make_transform

#: seed of the one-off draws that fix the test set (binarization or dequantization
#: noise), the same for every run so test ELBOs of different runs are comparable;
#: the validation set uses the next seed
TEST_SET_SEED = 2024


class SelectionSettings(Protocol):
    """The settings :func:`select_data` reads (fields of
    :class:`~pyrovae.training.config.TrainConfig`, which has their meaning)."""

    valid_size: Optional[int]
    hold_out_rule: str
    train_limit: Optional[int]
    test_limit: Optional[int]
    limit_rule: str
    labels_per_class: Optional[int]
    label_seed: Optional[int]
    split_seed: int


class PreprocessingSettings(Protocol):
    """The settings :func:`prepare_data` reads (fields of
    :class:`~pyrovae.training.config.TrainConfig`, which has their meaning)."""

    binarize: str
    dequantize: str
    standardize: str
    seed: int


@dataclass
class PreparedData:
    train_x: torch.Tensor  # (N_train, D), as stored (standardized if asked); `transform` is applied per minibatch
    test_x: torch.Tensor  # (N_test, D), transformed once, as the likelihood scores it
    transform: str  # "none" | "binarize" | "dequantize"
    binarize: str
    dequantize: str
    valid_x: Optional[torch.Tensor] = None  # (N_valid, D), transformed once like the test set
    levels: Optional[int] = None  # grey levels L of the data (dequantization spreads them), None: continuous
    standardization: Optional[dict] = None  # {"mean": (D,), "std": (D,)} of the training rows, or None
    train_y: Optional[torch.Tensor] = None  # (N_train,) int64 class labels, -1 where hidden; None: no labels
    valid_y: Optional[torch.Tensor] = None  # (N_valid,)
    test_y: Optional[torch.Tensor] = None  # (N_test,)

    def to(self, device) -> "PreparedData":
        """On ``device``, as float32 (the networks' dtype) and row-major (a minibatch gathers whole rows:
        a column-major set, as a transposed source gives, costs a strided copy per minibatch), the
        labels as int64."""
        move = lambda t: None if t is None else t.to(device, torch.float32).contiguous()  # noqa: E731
        return replace(self.labels_to(device), train_x=move(self.train_x), test_x=move(self.test_x),
                       valid_x=move(self.valid_x))

    def labels_to(self, device) -> "PreparedData":
        """The labels on ``device`` (they are small: they go there whatever the rows' placement)."""
        move = lambda t: None if t is None else t.to(device, torch.long)  # noqa: E731
        return replace(self, train_y=move(self.train_y), valid_y=move(self.valid_y), test_y=move(self.test_y))

    def record(self) -> dict:
        """What the preprocessing resolved to, for ``config.json``."""
        std = self.standardization
        return {"binarize": self.binarize, "dequantize": self.dequantize, "minibatch_transform": self.transform,
                "levels": self.levels,
                "standardize": None if std is None else {k: v.tolist() for k, v in std.items()}}


def select_data(config: SelectionSettings, dataset: Dataset) -> Dataset:
    """The examples a run uses: the validation set (``valid_size``, see
    :meth:`~pyrovae.data.Dataset.hold_out`), then the limits (``train_limit``, ``test_limit``
    under ``limit_rule``, :meth:`~pyrovae.data.Dataset.limit`), then, with
    ``labels_per_class``, the labelled training rows (seeded by ``label_seed``, else ``split_seed``,
    :meth:`~pyrovae.data.Dataset.hide_labels`)."""
    selected = dataset.hold_out(config.valid_size, config.hold_out_rule == "sorted-rows-random").limit(
        config.train_limit, config.test_limit, rule=config.limit_rule)
    if config.labels_per_class is not None:
        seed = config.split_seed if config.label_seed is None else config.label_seed
        selected = selected.hide_labels(config.labels_per_class, seed=seed)
    return selected


def prepare_data(config: PreprocessingSettings, dataset: Dataset, likelihood) -> PreparedData:
    """Resolve ``binarize``/``dequantize``/``standardize`` for this data and likelihood, apply
    the one-off transforms, and check the data against the likelihood's support (once, here).

    * binarize (``auto``): dynamic for the bernoulli likelihood on grey data;
    * dequantize (``auto``): uniform for other likelihoods on grey images with known
      levels :math:`L > 2` (``dataset.levels``, else detected), spreading the :math:`L` levels;
    * standardize (``auto``): for real-valued likelihoods on vector data (no image shape),
      :math:`x' = (x - m) / s` per column with the mean and standard deviation of the
      training rows (a constant column keeps :math:`s = 1`)."""
    binary = dataset.is_binary
    bern = likelihood.data == "binary"
    is_image = getattr(dataset, "image_shape", None) is not None
    levels = getattr(dataset, "levels", None)
    if levels is None and not binary and not getattr(dataset, "origin", None):  # a Dataset built by hand
        found = {detect_levels(x) for x in (dataset.train_x, dataset.test_x, dataset.valid_x) if x is not None}
        levels = found.pop() if len(found) == 1 else None  # every part on one grid, or continuous
    mode_b = config.binarize
    if mode_b == "auto":
        mode_b = "dynamic" if bern and not binary else "none"
    mode_s = config.standardize
    if mode_s == "auto":
        mode_s = "columns" if not is_image and likelihood.data == "real" else "none"
    mode_d = config.dequantize
    if mode_d == "auto":
        mode_d = "uniform" if not bern and not binary and is_image and levels and mode_s == "none" else "none"
    if binary and mode_d == "uniform":
        raise ConfigError(f"{dataset.name} is already binary; dequantize=uniform applies to data with grey levels")
    if mode_d == "uniform" and not levels:
        raise ConfigError(f"{dataset.name} has continuous values, not a known number of grey levels; "
                          "dequantize=uniform applies to discrete levels: drop --dequantize uniform")
    if mode_d == "uniform" and mode_s != "none":
        raise ConfigError("dequantize=uniform and standardize=columns do not combine; choose one")

    if mode_b != "none" or mode_d != "none":  # the transforms read pixels as grey levels: check those first
        for what, x in (("training", dataset.train_x), ("test", dataset.test_x), ("validation", dataset.valid_x)):
            _check_grey_levels(x, f"the {dataset.name} {what} data", "binarize" if mode_b != "none" else "dequantize",
                               "" if is_image else f"; for real-valued columns use --likelihood gaussian or laplace "
                               f"instead of {likelihood.name} (columns are then standardized)")

    train_x, test_x, valid_x, std = dataset.train_x, dataset.test_x, dataset.valid_x, None
    if mode_s == "columns":
        std = _column_statistics(train_x, f"the {dataset.name} training data")
        train_x, test_x = _standardize(train_x, std), _standardize(test_x, std)
        valid_x = None if valid_x is None else _standardize(valid_x, std)
    transform = "none"
    if mode_b == "static":  # one draw for the whole run, from the run's seed
        train_x = binarize(train_x, torch.Generator().manual_seed(config.seed))
    elif mode_b == "dynamic":
        transform = "binarize"
    elif mode_d == "uniform":
        transform = "dequantize"

    def held_out(x, seed):  # test and validation images: transformed once, with a fixed seed
        if x is None:
            return None
        g = torch.Generator().manual_seed(seed)
        if mode_b in ("static", "dynamic"):
            return binarize(x, g)
        return dequantize(x, g, levels) if mode_d == "uniform" else x

    test_x, valid_x = held_out(test_x, TEST_SET_SEED), held_out(valid_x, TEST_SET_SEED + 1)
    step = make_transform(transform, levels)
    seen_train = train_x if step is None else step(train_x, torch.Generator().manual_seed(TEST_SET_SEED))
    likelihood.check(seen_train, f"the {dataset.name} training data")
    likelihood.check(test_x, f"the {dataset.name} test data")
    if valid_x is not None:
        likelihood.check(valid_x, f"the {dataset.name} validation data")
    return PreparedData(train_x, test_x, transform, mode_b, mode_d, valid_x, levels if not binary else 2, std,
                        dataset.train_y, getattr(dataset, "valid_y", None), dataset.test_y)


def check_rows(x: torch.Tensor, what: str, binarize: str, dequantize: str, likelihood, to_model_space=None) -> None:
    """Refuse rows for a trained run (encoding them, say) that its training would have refused:
    grey levels in [0, 1] where the run binarizes or dequantizes (``binarize``, ``dequantize``:
    its resolved preprocessing), else values in the likelihood's support, in model space
    (``to_model_space``: the run's standardization of table columns)."""
    if binarize != "none" or dequantize != "none":
        _check_grey_levels(x, what, "binarize" if binarize != "none" else "dequantize")
        return
    likelihood.check(x if to_model_space is None else to_model_space(x), what)


def _column_statistics(x: torch.Tensor, what: str) -> dict:
    """Per-column mean and standard deviation (float64 sums, stored as float32)."""
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{what} has NaN or infinite values; clean or drop those rows")
    if len(x) < 2:
        raise DataError(f"{what} has {len(x)} row(s); standardizing columns needs at least 2")
    x64 = x.double()
    mean, std = x64.mean(0), x64.std(0)
    std = torch.where(std > 1e-12 * (1 + mean.abs()), std, torch.ones_like(std))  # a constant column stays as it is
    return {"mean": mean.float(), "std": std.float()}


def _standardize(x: torch.Tensor, stats: dict) -> torch.Tensor:
    return ((x.double() - stats["mean"].double()) / stats["std"].double()).float()


def _check_grey_levels(x, what: str, transform: str, hint: str = "") -> None:
    """Binarization draws Bernoulli(x) and dequantization spreads 8-bit levels: both need
    finite values in [0, 1]."""
    if x is None:
        return
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{what} has NaN or infinite values, which {transform} cannot use; clean or drop those rows")
    if len(x) and not bool(((x >= 0) & (x <= 1)).all()):
        raise DataError(f"{what} has values outside [0, 1] (min {float(x.min()):.4g}, max {float(x.max()):.4g}); "
                        f"{transform} reads pixels as grey levels in [0, 1]: rescale the data{hint}")


def check_shapes(dataset: Dataset) -> None:
    """Rows of one length, matching the images' shape (the figures and conv nets need it)."""
    parts = [("training", dataset.train_x), ("test", dataset.test_x), ("validation", dataset.valid_x)]
    for what, x in parts:
        if x is not None and (not isinstance(x, torch.Tensor) or x.dim() != 2):
            raise DataError(f"the {what} data must be a 2-d tensor (N, pixels), got "
                            f"{tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__}")
    widths = {x.shape[1] for _, x in parts if x is not None}
    if len(widths) != 1:
        raise DataError(f"training, test and validation rows differ in length ({sorted(widths)})")
    if dataset.image_shape is not None and math.prod(dataset.image_shape) != dataset.x_dim:
        raise DataError(f"image_shape {tuple(dataset.image_shape)} does not hold the {dataset.x_dim} pixels of a row; "
                        "give the Dataset its image_shape=(H, W) or (C, H, W), or None for vector data")

"""What a run trains and is scored on: the examples it uses (:func:`select_data`), and
their preprocessing for the chosen likelihood (:func:`prepare_data` -> :class:`PreparedData`).
"""
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

import torch

from ..errors import ConfigError, DataError
from .datasets import Dataset
from .transforms import TRANSFORMS, binarize, dequantize

if TYPE_CHECKING:  # the settings' type only; data/ imports nothing from training/ when it runs
    from ..training.config import TrainConfig

#: seed of the one-off draws that fix the test set (binarization or dequantization
#: noise), the same for every run so test ELBOs of different runs are comparable;
#: the validation set uses the next seed
TEST_SET_SEED = 2024


@dataclass
class PreparedData:
    train_x: torch.Tensor  # (N_train, D), as stored; `transform` is applied per minibatch
    test_x: torch.Tensor  # (N_test, D), transformed once, as the likelihood scores it
    transform: str  # "none" | "binarize" | "dequantize"
    binarize: str
    dequantize: str
    valid_x: Optional[torch.Tensor] = None  # (N_valid, D), transformed once like the test set

    def to(self, device) -> "PreparedData":
        """On ``device``, as float32 (the networks' dtype)."""
        move = lambda t: None if t is None else t.to(device, torch.float32)  # noqa: E731
        return PreparedData(move(self.train_x), move(self.test_x), self.transform, self.binarize,
                            self.dequantize, move(self.valid_x))


def select_data(config: "TrainConfig", dataset: Dataset) -> Dataset:
    """The examples a run uses: the validation set (``valid_size``, see
    :meth:`~pyrovae.data.Dataset.hold_out`), then the limits."""
    return dataset.hold_out(config.valid_size).limit(config.train_limit, config.test_limit)


def prepare_data(config: "TrainConfig", dataset: Dataset, likelihood) -> PreparedData:
    """Resolve ``binarize``/``dequantize`` for this data and likelihood, apply the one-off
    transforms, and check the data against the likelihood's support (once, here)."""
    binary = dataset.is_binary
    bern = likelihood.data == "binary"
    mode_b = config.binarize
    if mode_b == "auto":
        mode_b = "dynamic" if bern and not binary else "none"
    mode_d = config.dequantize
    if mode_d == "auto":
        mode_d = "uniform" if not bern and not binary else "none"
    if binary and mode_d == "uniform":
        raise ConfigError(f"{dataset.name} is already binary; dequantize=uniform applies to 8-bit grey data")

    if mode_b != "none" or mode_d != "none":  # the transforms read pixels as grey levels: check those first
        for what, x in (("training", dataset.train_x), ("test", dataset.test_x), ("validation", dataset.valid_x)):
            _check_grey_levels(x, f"the {dataset.name} {what} data", "binarize" if mode_b != "none" else "dequantize")

    train_x, transform = dataset.train_x, "none"
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
        return dequantize(x, g) if mode_d == "uniform" else x

    test_x, valid_x = held_out(dataset.test_x, TEST_SET_SEED), held_out(dataset.valid_x, TEST_SET_SEED + 1)
    step = TRANSFORMS[transform]
    seen_train = train_x if step is None else step(train_x, torch.Generator().manual_seed(TEST_SET_SEED))
    likelihood.check(seen_train, f"the {dataset.name} training data")
    likelihood.check(test_x, f"the {dataset.name} test data")
    if valid_x is not None:
        likelihood.check(valid_x, f"the {dataset.name} validation data")
    return PreparedData(train_x, test_x, transform, mode_b, mode_d, valid_x)


def _check_grey_levels(x, what: str, transform: str) -> None:
    """Binarization draws Bernoulli(x) and dequantization spreads 8-bit levels: both need
    finite values in [0, 1]."""
    if x is None:
        return
    if not bool(torch.isfinite(x).all()):
        raise DataError(f"{what} has NaN or infinite values, which {transform} cannot use; clean or drop those rows")
    if len(x) and not bool(((x >= 0) & (x <= 1)).all()):
        raise DataError(f"{what} has values outside [0, 1] (min {float(x.min()):.4g}, max {float(x.max()):.4g}); "
                        f"{transform} reads pixels as grey levels in [0, 1]: rescale the data")


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
    if math.prod(dataset.image_shape) != dataset.x_dim:
        raise DataError(f"image_shape {tuple(dataset.image_shape)} does not hold the {dataset.x_dim} pixels of a row; "
                        "give the Dataset its image_shape=(H, W)")

"""Rows of a data set read chunk by chunk for :func:`pyrovae.encode_dataset`: the layout of a
chunk (flat rows, images channel-first or channel-last) checked once from the array's shape, the
scale of its dtype (uint8 read as x/255), one chunk copied at a time (a NumPy memmap is read only
there), and finite values."""
import math
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import DataError


def _layout(rows, x_dim: int, image_shape, what: str) -> Callable[[np.ndarray], np.ndarray]:
    """How a chunk of ``rows`` (B, ...) becomes (B, x_dim): checked once, from the shape."""
    shape = tuple(rows.shape[1:])
    image = tuple(image_shape) if image_shape is not None else None
    flat = lambda c: c.reshape(len(c), x_dim)  # noqa: E731
    if len(rows.shape) < 2:
        raise DataError(f"{what} has shape {tuple(rows.shape)}; give rows of shape (N, {x_dim}) or (N, *image shape)")
    if math.prod(shape) != x_dim:
        raise DataError(f"{what} rows hold {math.prod(shape)} values (shape {tuple(rows.shape)}), "
                        f"but the VAE takes x_dim={x_dim}; encode data of the kind the run was trained on")
    if len(shape) == 1 or image is None or shape == image:
        return flat
    if len(image) == 2 and shape in ((1, *image), (*image, 1)):
        return flat
    if len(image) == 3 and shape == (*image[1:], image[0]):  # (H, W, C) -> (C, H, W)
        return lambda c: flat(np.ascontiguousarray(np.moveaxis(np.asarray(c), -1, 1)))
    raise DataError(f"{what} has rows of shape {shape}, but the VAE's images are {image}; give (N, {x_dim}) rows "
                    "or images of that shape")


def _read(rows, start: int, stop: int, layout, scale: Optional[float]) -> torch.Tensor:
    """Rows ``start:stop`` as a float32 CPU tensor (B, x_dim): a copy of that chunk only."""
    chunk = rows[start:stop]
    if isinstance(chunk, torch.Tensor):
        chunk = chunk.detach().cpu().numpy()
    chunk = layout(np.array(chunk, dtype=np.float32))  # (B, ...) -> (B, x_dim)
    x = torch.from_numpy(chunk)
    return x / scale if scale is not None else x


def _scale_of(rows, what: str) -> Optional[float]:
    """255 for uint8 (x/255), None for bool and floats; other dtypes are refused."""
    dtype = rows.dtype
    if isinstance(dtype, torch.dtype):
        dtype = torch.empty(0, dtype=dtype).numpy().dtype
    dtype = np.dtype(dtype)
    if dtype == np.uint8:
        return 255.0
    if dtype == np.bool_ or dtype.kind == "f":
        return None
    raise DataError(f"{what} has dtype {dtype}; give uint8 (0..255), bool or floats in the data's units")


def _check_finite(x: torch.Tensor, first: int) -> None:
    bad = ~torch.isfinite(x).all(dim=1)
    if bool(bad.any()):
        raise DataError(f"row {first + int(bad.nonzero()[0])} of the data has NaN or infinite values; "
                        "clean or drop those rows")

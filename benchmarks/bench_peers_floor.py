"""The matrix-product floor of ``scripts/bench_peers.py``: the products of one training step
of the MLP VAE (see :mod:`.bench_peers`), their FLOPs, and a step of exactly those products."""
from typing import Callable, List, Sequence

import torch


def matmul_shapes(x_dim: int, hidden: Sequence[int], z_dim: int, batch: int) -> List[tuple]:
    """(m, k, n) of every product of one training step (see :mod:`.bench_peers`, "The floor")."""
    layers = list(zip([x_dim, *hidden], [*hidden, 2 * z_dim]))
    layers += list(zip([z_dim, *reversed(hidden)], [*reversed(hidden), x_dim]))
    out = [(batch, i, o) for i, o in layers] + [(o, batch, i) for i, o in layers]
    return out + [(batch, o, i) for i, o in layers[1:]]


def flops(x_dim: int, hidden: Sequence[int], z_dim: int, batch: int) -> dict:
    """FLOPs of one step's products: the forward F, 2F, 3F, those needed, the product count."""
    shapes = matmul_shapes(x_dim, hidden, z_dim, batch)
    forward = sum(2 * m * k * n for m, k, n in shapes[:(len(shapes) + 1) // 3])  # the first L of 3L - 1
    needed = sum(2 * m * k * n for m, k, n in shapes)
    return {"forward": forward, "backward_2x": 2 * forward, "step_formula": 3 * forward, "step_needed": needed,
            "skipped_first_input_gradient": 3 * forward - needed, "products_per_step": len(shapes)}


def floor_step(shapes, onednn: bool) -> Callable:
    """One step's products, each once, on fixed random operands: ``torch.mm`` or oneDNN (``pyrovae::onednn_mm``)."""
    mats = [(torch.randn(m, k), torch.randn(k, n)) for m, k, n in shapes]
    mm = torch.ops.pyrovae.onednn_mm if onednn else torch.mm

    def step(_=None):
        for a, b in mats:
            mm(a, b)
    return step

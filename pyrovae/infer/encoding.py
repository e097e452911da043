r"""Amortized inference over a whole data set, streamed into one ``.npz`` file.

:func:`encode_dataset` runs the trained guide over ``rows`` chunk by chunk and writes, per row n:

* ``loc``, ``scale`` (N, z_dim) float32: the parameters of the guide's base Normal,
  :math:`q(z \mid x_n) = \mathcal{N}(\mathrm{loc}_n, \mathrm{diag}(\mathrm{scale}_n^2))`
  (:meth:`~pyrovae.VAE.encode`; with a flow guide, its base distribution), of the rows
  **as given**: grey pixels stay grey, no noise is added, so the latents are a deterministic
  function of the data;
* ``row`` (N,) int64: the source row index; ``y`` (N,) int64 where labels are given;
* with ``score=True``: ``elbo``, ``expected_log_likelihood``, ``kl`` (N,) float32 in nats,
  :math:`\mathrm{ELBO}(x) = \mathbb{E}_q[\log p(x \mid z)] - \mathrm{KL}(q(z \mid x) \,\|\, p(z))`
  (:func:`pyrovae.elbo`: closed-form KL where the guide and prior have one, else Monte Carlo);
* with ``num_samples=K``: ``log_px`` (N,) float32, the importance-sampled
  :math:`\log \hat p_K(x_n) = \log \frac{1}{K} \sum_k p(x_n, z_k) / q(z_k \mid x_n)`
  (:func:`pyrovae.log_likelihood`), a lower bound in expectation; low values flag unusual rows;
* ``info``: a 0-d string, JSON of what was run (readable with ``allow_pickle=False``).

The scores are computed on ``preprocess(x)``: the data the likelihood scores (a run with a
Bernoulli likelihood on grey data scores fixed binarized draws, :func:`held_out_transform`).

Memory stays constant in N: one chunk of ``batch_size`` rows is read (a NumPy memmap is read
only there), moved to the device and written into ``.npy`` memmaps in a temporary folder
beside ``out_path``; those are then stored uncompressed into the ``.npz``, which replaces
``out_path`` in one ``os.replace``. An error or Ctrl-C leaves no partial file and nothing
overwritten. One writer at a time: ``out_path`` is locked (``.<name>.lock`` beside it) while
it is written, so a second encode into the same file is refused in one line, and the
temporary folders of a killed encode of it are removed by the next one.
"""
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from ..atomic import Lock, check_name, replace_whole
from ..data.prepare import TEST_SET_SEED
from ..data.transforms import binarize as _binarize
from ..data.transforms import dequantize as _dequantize
from ..errors import ConfigError, DataError, WriteError, one_line
from .chunks import _check_finite, _layout, _read, _scale_of
from .evaluation import elbo, log_likelihood

Preprocess = Callable[[torch.Tensor], torch.Tensor]


def held_out_transform(binarize: str = "none", dequantize: str = "none", seed: int = TEST_SET_SEED,
                       levels: Optional[int] = None) -> Optional[Preprocess]:
    """A run's one-off transform of held-out rows (``config.json`` "resolved"), as a callable
    applied to consecutive CPU chunks: Bernoulli draws (binarize ``static``/``dynamic``) or
    uniform dequantization (``uniform``) from one ``torch.Generator(seed)``, chunk after chunk,
    which on the CPU are the same numbers as one draw over all rows (what
    :func:`~pyrovae.data.prepare.prepare_data` scores); None where the run scores rows as they are."""
    if binarize not in ("none", "static", "dynamic") or dequantize not in ("none", "uniform"):
        raise ConfigError(f"unknown preprocessing binarize={binarize!r}, dequantize={dequantize!r}")
    if binarize == "none" and dequantize == "none":
        return None
    generator = torch.Generator().manual_seed(seed)

    def transform(x: torch.Tensor) -> torch.Tensor:
        if binarize != "none":
            return _binarize(x, generator)
        if levels in (None, 256):
            return _dequantize(x, generator)
        return _dequantize(x, generator, levels=levels)

    return transform


def _per_block(value, n: int, name: str, shared: bool) -> list:
    """``value`` for each of ``n`` blocks: a list as is, else one value for one block (or,
    where ``shared``, the same for all blocks)."""
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ConfigError(f"{name} has {len(value)} entries for {n} blocks of rows; give one per block")
        return list(value)
    if n == 1 or shared or value is None:
        return [value] * n
    raise ConfigError(f"the rows come in {n} blocks; give {name} as a list, one per block")


def _check_out(out_path) -> Path:
    """``out_path`` as a path, refused in one line unless it ends in ``.npz``, is not a folder
    nor a symbolic link, and its folder exists and can be written (a probe file is made there
    and removed)."""
    out = Path(out_path)
    if out.suffix != ".npz":
        raise ConfigError(f"the output {out} must end in .npz")
    check_name(out)
    if not out.parent.is_dir():
        raise ConfigError(f"the folder of the output {out} does not exist; create {out.parent} first")
    if out.is_symlink():
        raise ConfigError(f"the output {out} is a symbolic link; give the path of a file that is not a link (a link "
                          "is never written through)")
    if out.is_dir():
        raise ConfigError(f"the output {out} is a folder; give a file name ending in .npz")
    try:
        fd, probe = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise WriteError(f"cannot write the output {out} ({(error.strerror or str(error)).lower()}: {out.parent}); choose another "
                         "--out, in a writable folder") from None
    return out


@torch.no_grad()
def encode_dataset(vae, rows, out_path, batch_size: int = 1024, score: bool = False, num_samples: int = 0,
                   num_particles: int = 10, preprocess=None, labels=None, row_ids=None,
                   progress: Optional[Callable[[int], None]] = None, seed: Optional[int] = 0,
                   info: Optional[dict] = None, check: Optional[Callable[[torch.Tensor, str], None]] = None) -> dict:
    """Encode every row of ``rows`` with ``vae``'s guide (and score it), into ``out_path`` (.npz).

    :param rows: (N, D) or (N, *image shape) torch tensor, NumPy array or memmap, uint8
        (read as x/255), bool or float in the data's units; or a list of such blocks, read
        one after another as one set of rows; or a :class:`~pyrovae.data.datasets.Dataset`
        (its training, validation and test rows, in that order, with their labels).
    :param batch_size: rows read, moved to the device and scored at a time.
    :param score: write the per-row ELBO and its split, averaged over ``num_particles`` draws.
    :param num_samples: K > 0 also writes ``log_px`` with K importance samples per row.
    :param preprocess: what the scores see: a callable on consecutive (B, D) float CPU chunks
        (e.g. :func:`held_out_transform`), or a list of them, one per block; None: rows as given.
    :param labels: (N,) integers (a list: one per block, None where unknown) -> ``y``, written
        when every block has them.
    :param row_ids: (N,) source row indices -> ``row`` (default 0..N-1).
    :param progress: called with the number of rows after each chunk.
    :param seed: seeds the Monte-Carlo draws (the caller's random state is left as it was);
        None draws from the global random state.
    :param info: extra JSON-able facts recorded in the file's ``info``.
    :param check: called as ``check(x, what)`` on every chunk (B, D) of float rows as read;
        raises :class:`~pyrovae.errors.DataError` for rows the model's run would refuse
        (``encode.py`` checks what training checks, :func:`~pyrovae.data.prepare.check_rows`).
    :returns: a summary: path, rows, the arrays written, means of the scores, seconds.
    """
    if batch_size < 1 or num_samples < 0 or num_particles < 1:
        raise ConfigError("batch_size and num_particles must be positive and num_samples 0 or positive")
    out = _check_out(out_path)
    with Lock(out.parent / f".{out.name}.lock", busy=lambda holder: f"{out} is being written by another encode "
              f"(pid {holder or 'unknown'}); wait for it to end, or choose another output",
              unwritable=lambda reason: f"cannot write the output {out} ({reason}); choose another output, in a "
                                        "writable folder"):
        _remove_leftovers(out)
        return _encode(vae, rows, out, batch_size, score, num_samples, num_particles, preprocess, labels, row_ids,
                       progress, seed, info, check)


def _remove_leftovers(out: Path) -> int:
    """Remove the temporary folders of earlier writes of ``out`` that were killed (the
    caller holds ``out``'s lock, so none of them is being written); their count."""
    leftovers = [p for p in out.parent.glob(f".{out.name}.*.parts") if p.is_dir() and not p.is_symlink()]
    for path in leftovers:
        shutil.rmtree(path, ignore_errors=True)
    return len(leftovers)


def _encode(vae, rows, out, batch_size, score, num_samples, num_particles, preprocess, labels, row_ids, progress,
            seed, info, check) -> dict:
    if hasattr(rows, "train_x") and hasattr(rows, "test_x"):  # a pyrovae.Dataset: training, validation, test rows
        parts = [(rows.train_x, rows.train_y), (rows.valid_x, getattr(rows, "valid_y", None)),
                 (rows.test_x, rows.test_y)]
        parts = [(x, y) for x, y in parts if x is not None]
        rows, labels = [x for x, _ in parts], labels if labels is not None else [y for _, y in parts]
    blocks = list(rows) if isinstance(rows, (list, tuple)) else [rows]
    preprocess = _per_block(preprocess, len(blocks), "preprocess", shared=True)
    labels = _per_block(labels, len(blocks), "labels", shared=False)
    image_shape = getattr(vae, "image_shape", None)
    what = lambda i: "the data" if len(blocks) == 1 else f"block {i} of the data"  # noqa: E731
    layouts = [_layout(b, vae.x_dim, image_shape, what(i)) for i, b in enumerate(blocks)]
    scales = [_scale_of(b, what(i)) for i, b in enumerate(blocks)]
    n = sum(len(b) for b in blocks)
    if n == 0:
        raise DataError("the data has no rows: there is nothing to encode")
    with_y = all(y is not None for y in labels)
    if with_y and any(len(y) != len(b) for y, b in zip(labels, blocks)):
        raise DataError("the labels and the rows differ in number")
    if row_ids is not None and len(row_ids) != n:
        raise DataError(f"row_ids has {len(row_ids)} entries for {n} rows")
    conditional = getattr(vae, "labels", "none") == "required"  # a model that encodes rows given their labels
    if conditional and not with_y:
        raise DataError(f"the {vae.kind} model encodes rows given their class labels, and these rows have none; "
                        "encode the run's own data (test, train, all) or a source with labels")
    device = next(vae.parameters()).device
    specs = {"row": ((n,), np.int64)}  # and the latents of the first chunk (loc, scale, ...), made when it is read
    if with_y:
        specs["y"] = ((n,), np.int64)
    if score:
        specs.update({k: ((n,), np.float32) for k in ("elbo", "expected_log_likelihood", "kl")})
    if num_samples:
        specs["log_px"] = ((n,), np.float32)
    record = {"rows": n, "z_dim": getattr(vae, "z_dim", None), "batch_size": batch_size, "seed": seed,
              "num_particles": num_particles if score else None, "num_samples": num_samples or None,
              "encoded": "rows as given (no noise)", **(info or {})}
    started = time.time()
    try:
        parts = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".parts"))
    except OSError as error:
        raise WriteError(f"cannot write beside {out} ({one_line(error, 120)})") from None
    try:
        arrays = {k: np.lib.format.open_memmap(parts / f"{k}.npy", mode="w+", dtype=t, shape=s)
                  for k, (s, t) in specs.items()}
        latents = []  # the model's latents, in the order it gives them
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else [], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            offset = 0
            for i, block in enumerate(blocks):
                for start in range(0, len(block), batch_size):
                    stop = min(start + batch_size, len(block))
                    x = _read(block, start, stop, layouts[i], scales[i])  # (B, D) float32, CPU
                    where = slice(offset + start, offset + stop)
                    _check_finite(x, offset + start)
                    on_device = x.to(device)
                    if check is not None:
                        check(on_device, f"rows {offset + start}..{offset + stop - 1} of the data")
                    given = torch.as_tensor(np.asarray(labels[i][start:stop])).to(device) if conditional else None
                    for key, value in vae.latents(on_device, given).items():  # (B, dims) each: loc, scale, ...
                        if key not in arrays:
                            latents.append(key)
                            arrays[key] = np.lib.format.open_memmap(parts / f"{key}.npy", mode="w+", dtype=np.float32,
                                                                   shape=(n, value.shape[-1]))
                        arrays[key][where] = value.cpu().numpy()
                    if score or num_samples:
                        scored = x if preprocess[i] is None else preprocess[i](x)
                        scored = scored.to(device)
                        scored = vae.to_model_space(scored)  # a standardized run scores in model space
                        if score:
                            split = elbo(vae, scored, num_particles=num_particles, batch_size=len(scored), y=given)
                            arrays["elbo"][where] = split.elbo.cpu().numpy()
                            arrays["expected_log_likelihood"][where] = split.expected_log_likelihood.cpu().numpy()
                            arrays["kl"][where] = split.kl.cpu().numpy()
                        if num_samples:
                            arrays["log_px"][where] = log_likelihood(vae, scored, num_samples=num_samples,
                                                                     y=given).cpu().numpy()
                    if with_y:
                        arrays["y"][where] = np.asarray(labels[i][start:stop], dtype=np.int64)
                    arrays["row"][where] = (np.arange(where.start, where.stop) if row_ids is None
                                            else np.asarray(row_ids[where], dtype=np.int64))
                    if progress is not None:
                        progress(stop - start)
                offset += len(block)
        summary = {k: float(np.mean(arrays[k], dtype=np.float64)) for k in ("elbo", "log_px") if k in arrays}
        for array in arrays.values():
            array.flush()
        del arrays
        np.save(parts / "info.npy", np.array(json.dumps(record)))
        _store(parts, [*latents, *specs, "info"], out)
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    seconds = time.time() - started
    return {"out": str(out), "rows": n, "arrays": [*latents, *specs], "seconds": seconds,
            "rows_per_second": n / max(seconds, 1e-9), **{f"mean_{k}": v for k, v in summary.items()}}


def _store(parts: Path, names: Sequence[str], out: Path) -> None:
    """Zip ``parts/<name>.npy`` uncompressed into ``out`` (an ``.npz``), replacing it whole;
    each member is copied in blocks, so memory stays small."""
    def write(f):
        with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
            for name in names:
                archive.write(parts / f"{name}.npy", arcname=f"{name}.npy")

    try:
        replace_whole(out, write)
    except OSError as error:
        raise WriteError(f"could not write {out} ({one_line(error, 120)}); nothing was written over") from None

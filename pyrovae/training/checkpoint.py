"""Checkpoints: written atomically, read with ``torch.load(weights_only=True)``.

A checkpoint is a dict of plain values and tensors (no pickled classes): the model's kind
(``model``: a name of :mod:`pyrovae.model.registry`, or ``custom``; a VAE where absent) and
architecture (``vae``: the model's ``config()``), its ``state_dict``, the optimizer's state dict, the
run's :class:`~pyrovae.training.config.TrainConfig` as a dict, the epoch and the history. It is
written to a temporary file in the same folder, flushed and fsynced, then moved over the
old one with ``os.replace``, so a crash leaves either the old file or the new one.

Reading checks, before anything is built from a file: that it is a zip archive whose
entries all match their CRC-32 (``torch.save`` records one per entry, so a flipped bit
anywhere in the tensor data is caught), that it loads with ``weights_only=True``, that it
carries pyrovae's format tag, and that its parts have the types a checkpoint's parts
have. :func:`load` then builds the recorded architecture on PyTorch's ``meta`` device
(no memory) and refuses a file whose tensors do not fit it or are not finite, so a
crafted architecture (``hidden: [1e7, 1e7]``) cannot make it allocate gigabytes. A VAE
recorded as ``"standardized": True`` is built with placeholder buffers that its
``state_dict`` then fills (the column means and standard deviations of its run), and
``image_shape`` is rebuilt as recorded: (H, W), (C, H, W) or None.
"""
import pickle
import random
import re
import zipfile
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ..errors import CheckpointError, PyrovaeError, one_line
from ..model.base import Model
from ..model.likelihoods import CallableLikelihood, Likelihood
from ..model.registry import CUSTOM, MODELS, describe, model_class
from ..model.standardize import Standardize
from .files import as_recorded, atomic_write, remove_stale_temporaries, write_json  # noqa: F401 (their old home)

FORMAT = "pyrovae-checkpoint-1"


def capture_rng() -> dict:
    """Every random state a run draws from (torch CPU and CUDA, NumPy, Python), as
    tensors and plain values that ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "state": list(internal), "gauss_next": gauss_next},
    }


def restore_rng(state: dict) -> None:
    """Undo :func:`capture_rng` (CUDA states only where as many GPUs are visible)."""
    torch.set_rng_state(state["torch"].cpu())
    if state["cuda"] and torch.cuda.is_available() and torch.cuda.device_count() == len(state["cuda"]):
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss_next"]))


def save_checkpoint(path, vae: Model, optimizer: Optional[torch.optim.Optimizer] = None, **extra) -> None:
    """Save ``vae`` (and ``optimizer``, and plain-valued ``extra`` entries) to ``path``."""
    state = {"format": FORMAT, **model_record(vae), "state_dict": vae.state_dict()}
    if optimizer is not None:
        state["optimizer"] = optimizer.state_dict()
    state.update(extra)
    atomic_write(path, lambda f: torch.save(state, f))


def _verify_crc(path: Path) -> None:
    """Every entry of the zip archive at ``path`` against its recorded CRC-32."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or damaged archive): "
                              f"{one_line(error)}") from None
    if bad is not None:
        raise CheckpointError(f"{path} is corrupt: its entry {bad} does not match its CRC-32 (a damaged copy or "
                              "disk); use an intact copy, or resume from an earlier checkpoint")


# the parts a checkpoint may hold, with their types (entries beyond these are the caller's)
_PART_TYPES = {"model": str, "model_class": str, "vae": dict, "state_dict": dict, "optimizer": dict, "config": dict, "loop": dict, "rng": dict,
               "metrics": dict, "history": list, "epoch": int}


def _check_parts(state: dict, path: Path) -> None:
    for key in ("vae", "state_dict"):
        if key not in state:
            raise CheckpointError(f"{path} is a damaged pyrovae checkpoint: it has no {key!r} entry")
    for key, kind in _PART_TYPES.items():
        if key in state and not isinstance(state[key], kind):
            raise CheckpointError(f"{path} is a damaged pyrovae checkpoint: its {key!r} entry is a "
                                  f"{type(state[key]).__name__}, not a {kind.__name__}")
    if not all(isinstance(k, str) and torch.is_tensor(v) for k, v in state["state_dict"].items()):
        raise CheckpointError(f"{path} is a damaged pyrovae checkpoint: its 'state_dict' holds more than tensors")


def read_checkpoint(path, map_location="cpu") -> dict:
    """The checkpoint dict, loaded without running any pickled code, after its CRCs and
    the types of its parts are checked."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive
        raise CheckpointError(f"{path} is not a readable checkpoint (empty, truncated or not written by torch.save)")
    _verify_crc(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL [\w.]+", str(error))
        raise CheckpointError(
            f"{path} was refused: it holds objects other than tensors and plain values "
            f"({found.group(0) if found else 'not loadable with weights_only=True'}), and loading it could run code"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or foreign file): "
                              f"{one_line(error)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a pyrovae checkpoint")
    _check_parts(state, path)
    return state


#: what a recorded prior or guide may ask for before anything is allocated
_PART_LIMITS = {"components": 100_000, "steps": 64, "hidden": 65_536}
_PARTS = {"prior": "prior.", "guide": "posterior_family."}  # config key -> state_dict prefix


def _build(cls, arch: dict, likelihood, path: Path, state_dict: dict) -> Model:
    """The recorded architecture of a model of pyrovae's registry (``cls``), first on the
    ``meta`` device (shapes only, no memory) to check the networks against the stored
    tensors, then for real. A prior or guide family (whose Pyro modules cannot all be built
    on ``meta``) is bounded by :data:`_PART_LIMITS` first and checked by ``load_state_dict``."""
    nested = arch.get("m1") if isinstance(arch.get("m1"), dict) else {}  # an m1m2 model's VAE
    for part, config in [(part, config) for config in (arch, nested) for part in _PARTS]:
        for key, limit in _PART_LIMITS.items():
            values = config.get(part, {}).get(key, []) if isinstance(config.get(part), dict) else []
            for value in values if isinstance(values, list) else [values]:
                if not (isinstance(value, (int, float)) and 0 < value <= limit):
                    raise CheckpointError(f"{path} records a {part} with {key}={value!r}, outside (0, {limit}]; "
                                          "the file is damaged or was edited")
    core = {k: v for k, v in arch.items() if k not in _PARTS}
    if nested:
        core["m1"] = {k: v for k, v in nested.items() if k not in _PARTS}
    try:
        with torch.device("meta"):
            shell = cls(**core, likelihood=likelihood)
    except (TypeError, ValueError, PyrovaeError) as error:
        raise CheckpointError(f"{path} records an architecture pyrovae cannot build: {one_line(error)}") from None
    expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    skipped = tuple(_PARTS.values()) + tuple(f"m1.{prefix}" for prefix in _PARTS.values())
    expected = {k: v for k, v in expected.items() if not k.startswith(skipped)}
    stored = {k: tuple(v.shape) for k, v in state_dict.items() if not k.startswith(skipped)}
    if expected != stored:
        wrong = sorted(set(expected.items()) ^ set(stored.items()))[0][0]
        raise CheckpointError(f"{path} does not match its recorded architecture (first difference: {wrong}); "
                              "the file is damaged or was edited")
    check_finite(state_dict, path)
    try:
        return cls(**arch, likelihood=likelihood)
    except (TypeError, ValueError, PyrovaeError) as error:
        raise CheckpointError(f"{path} records an architecture pyrovae cannot build: {one_line(error)}") from None


def check_finite(state_dict: dict, path: Path) -> None:
    """Refuse weights that are NaN or infinite (a run that diverged, or an edited file)."""
    if not all(bool(torch.isfinite(v).all()) for v in state_dict.values() if v.is_floating_point()):
        raise CheckpointError(f"{path} holds NaN or infinite weights; use an earlier checkpoint")


def load(path, map_location="cpu", likelihood=None, model=None) -> Model:
    """A trained model from a checkpoint, in eval mode: a :class:`~pyrovae.model.vae.VAE`, or the
    model of pyrovae's registry the checkpoint records (``cvae``, ``m2``).

    ``likelihood`` is needed only when the run used a custom callable likelihood (which
    a checkpoint cannot hold): pass the same callable again. ``model``: the class of a
    user's own :class:`~pyrovae.model.base.Model` (a checkpoint holds its ``config()``, never
    its code), built as ``model(**config)``. (A run folder's own programs open it through
    :class:`~pyrovae.training.run.Run`, which also checks that the file belongs to the run.)"""
    return model_from_state(read_checkpoint(path, map_location), path, map_location, likelihood, model)


def model_from_state(state: dict, path, map_location="cpu", likelihood=None, model=None) -> Model:
    """The model of a checkpoint already read by :func:`read_checkpoint` (``path`` names it in errors)."""
    kind = state.get("model", "vae")  # checkpoints from before the registry hold a VAE
    cls = model_class(kind if isinstance(kind, str) else "?", model, str(path))
    device = map_location if isinstance(map_location, (str, torch.device)) else "cpu"
    if cls not in MODELS.values():  # a user's class, given again: built from its own config
        return _build_custom(cls, state, Path(path)).to(device).eval()
    arch = dict(state["vae"])
    lik = arch.pop("likelihood", None)
    if not isinstance(lik, dict) or "name" not in lik:
        raise CheckpointError(f"{path} is a damaged pyrovae checkpoint: its architecture names no likelihood")
    if likelihood is None and lik.get("custom"):
        raise CheckpointError(f"{path} was trained with the custom likelihood {lik['name']!r}; "
                              "pass likelihood=<that callable> to pyrovae.load")
    for part in ("prior", "guide"):
        if isinstance(arch.get(part), dict) and arch[part].get("custom"):
            raise CheckpointError(f"{path} was trained with a custom {part} ({arch[part].get('name')!r}), which a "
                                  f"checkpoint cannot hold; build pyrovae.VAE(**config, {part}=<that callable>) and "
                                  "load_state_dict(state['state_dict']) yourself")
    if likelihood is not None and not isinstance(likelihood, Likelihood):
        likelihood = CallableLikelihood(likelihood, lik.get("outputs_per_pixel", 1), lik["name"])
    vae = _build(cls, arch, likelihood if likelihood is not None else lik, Path(path), state["state_dict"])
    try:
        vae.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not match its recorded architecture: {one_line(error)}") from None
    if any(isinstance(m, Standardize) and not bool((m.std > 0).all()) for m in vae.modules()):
        raise CheckpointError(f"{path} records a standardization with a std that is not positive; "
                              "the file is damaged or was edited")
    return vae.to(device).eval()


def _build_custom(cls, state: dict, path: Path) -> Model:
    """A user's model ``cls(**config)`` with the checkpoint's weights."""
    check_finite(state["state_dict"], path)
    try:
        built = cls(**state["vae"])
    except Exception as error:  # the user's constructor: any refusal of the recorded config is one line
        raise CheckpointError(f"{path}: {cls.__name__}(**config) failed with the recorded config "
                              f"({type(error).__name__}: {one_line(error, 120)}); pass the class the run trained") from None
    try:
        built.load_state_dict(state["state_dict"])
    except RuntimeError as error:
        raise CheckpointError(f"{path} does not match {cls.__name__}: {one_line(error)}; pass the class the run "
                              "trained") from None
    return built


def check_same_model(model: Model, state: dict, path) -> None:
    """Refuse a checkpoint whose recorded model (``state["vae"]``) is not the one a run's settings
    build (``model``): a resume would load weights into other units or shapes."""
    built, recorded = as_recorded(model.config()) or {}, as_recorded(state.get("vae")) or {}
    if built != recorded:
        key = next(k for k in sorted(set(built) | set(recorded)) if built.get(k) != recorded.get(k))
        raise CheckpointError(f"{path} holds a model whose {key} is {recorded.get(key)!r}, but its settings build "
                              f"one whose {key} is {built.get(key)!r}; resume it with the pyrovae that trained it, or "
                              "start a new run")


def model_record(model: Model) -> dict:
    """What a checkpoint records of a model besides its weights: its kind and its ``config()``
    (under ``vae``, the key of every checkpoint since the first)."""
    return {"model": model.kind if type(model) in MODELS.values() else CUSTOM, "model_class": describe(model),
            "vae": model.config()}


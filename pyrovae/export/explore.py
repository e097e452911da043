"""The latent explorer (``scripts/explore.py``): a static web page that runs a run's exported
decoder in the browser, :func:`build_explorer`.

The page folder holds ``index.html`` and ``explorer.js`` (the templates in ``page/`` beside this
module), ``explorer.json`` (what the page shows, below), ``model/`` (the run's ONNX export,
:func:`pyrovae.export.export_run`) and ``runtime/`` (onnxruntime-web's WebAssembly build,
:mod:`pyrovae.export.runtime`). Served by any static file server (``python -m http.server`` in
the folder), the page decodes z with onnxruntime-web alone: no Python runs while it is used.

``explorer.json``:

* ``dims``: every latent dimension, the one with the most KL first, with its slider's range, the
  prior's marginal mean plus or minus three standard deviations; ``sliders`` of them get a slider,
  and the first two are the 2-D pad's axes. The KL per dimension is, in this order of preference:
  ``evaluate.py``'s on the test rows (``metrics.json`` ``evaluation``, where it scored the exported
  checkpoint), the validation rows' at the exported checkpoint's epoch (``metrics.json``
  ``history``), or computed here on up to :data:`KL_ROWS` test rows. Where it is not defined (a flow
  guide) the dimensions are ordered by the variance of the test rows' posterior means.
* ``test``: ``test_images`` test images evenly spaced over the run's test set, as 8-bit pixels,
  with their posterior means (for a flow guide the flow's image of the base mean, the z a
  reconstruction decodes) and labels: a click on one sets the sliders to its z.
* ``start``: the z drawn first: the first test image's posterior mean, else the prior mean.
* ``labels``: for a decoder that takes a class besides z, that input and the classes.

The folder is written under a temporary name beside ``out`` and renamed: ``out`` holds the whole
page or is as it was. ``out`` must be new or an empty folder.
"""
import base64
import json
import shutil
import signal
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..data.transforms import evenly_spaced_rows
from ..errors import ConfigError, Interrupted, PyrovaeError, one_line
from ..training.files import write_json
from ..training.run import Run
from .exporter import _check_exportable, _write_folder, check_out, export_run
from .runtime import SPEC, find_runtime

#: the page's own files, copied from ``page/``
PAGE = Path(__file__).with_name("page")
TEMPLATES = ("index.html", "explorer.js")
#: the most test rows the KL per dimension is computed on, where the run's records have none
KL_ROWS = 1000


def build_explorer(run_dir, out, checkpoint: Optional[str] = None, runtime=None, fetch: bool = True,
                   sliders: int = 8, test_images: int = 16, log: Callable[[str], None] = print,
                   command: Optional[str] = None) -> dict:
    """Write the explorer page of the run in ``run_dir`` into the new folder ``out`` (see the module
    docstring); ``checkpoint``: ``best``, ``last`` or None (``best.pt`` where the run kept one);
    ``runtime``, ``fetch``: where onnxruntime-web comes from (:func:`pyrovae.export.runtime.find_runtime`);
    ``sliders``: how many dimensions get a slider; ``test_images``: how many test images the page
    shows (0: none). Returns the contents of ``explorer.json``."""
    for name, value, least in (("--sliders", sliders, 1), ("--test-images", test_images, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"{name} must be an integer of at least {least}, got {value!r}")
    out = check_out(out)  # before anything slow
    with Run.open(run_dir) as run:  # a reader: the run's lock, shared
        _check_exportable(run)
        state = run.checkpoint(checkpoint)
        vae = run.model(checkpoint, "cpu", state=state)
        if getattr(vae, "image_shape", None) is None:
            raise ConfigError(f"{run.folder} was trained on a table, not images; the explorer draws the decoded "
                              "image: use scripts/export.py for the run's networks")
        install = find_runtime(runtime, fetch, log)  # before the slow steps: a missing runtime is refused first
        name, epoch = run.path(checkpoint).name, state.get("epoch")
        rows, x, y, classes, note = _test_rows(run, vae, test_images, log)
        kl, ranking = _kl(run, vae, name, epoch, x, y)
        z = _z_star(vae, x[:test_images], None if y is None else y[:test_images])  # (T, K)
        if kl is None:
            kl = None if len(z) < 2 else z.var(0).tolist()
            ranking = ("by the variance of the test images' posterior means (the KL per dimension is not defined: "
                       f"{ranking})" if kl is not None else f"by index ({ranking}; no test images)")
        record = _record(vae, run, name, epoch, kl, ranking, sliders, rows, x[:test_images],
                         None if y is None else y[:test_images], z, classes, note, command)

        def fill(folder: Path) -> dict:
            export_run(run.folder, "onnx", folder / "model", checkpoint, log=lambda line: None, command=command)
            _decoder(record, json.loads((folder / "model" / "model.json").read_text(encoding="utf-8")), vae)
            install(folder / "runtime")
            for template in TEMPLATES:
                shutil.copyfile(PAGE / template, folder / template)
            write_json(folder / "explorer.json", record)
            return record

        log(f"writing the explorer of {run.folder / name} (epoch {epoch}) into {out}")
        try:
            _write_folder(out, fill)
        except KeyboardInterrupt as stop:  # SIGINT, or SIGTERM as scripts/_startup.py raises it
            signum = stop.args[0] if stop.args and isinstance(stop.args[0], int) else signal.SIGINT
            raise Interrupted(f"interrupted ({signal.Signals(signum).name}); nothing was written to {out}",
                              128 + signum) from None
    log(f"wrote {out}: serve it with `python -m http.server --directory {out}` and open http://localhost:8000/")
    return record


def _test_rows(run: Run, vae, n: int, log):
    """The run's test rows the page uses: indices, x (T, D) in data units, labels (T,) or None, the
    class names or None, and a note; up to :data:`KL_ROWS` rows evenly spaced over the test set, the
    first ``n`` of them the strip's (themselves evenly spaced). No rows where the data cannot be had."""
    empty = (torch.zeros(0, dtype=torch.long), torch.zeros(0, vae.x_dim), None, None)
    try:
        dataset = run.dataset(log=lambda line: None)
    except PyrovaeError as error:
        log(f"no test images on the page: the run's data cannot be read ({one_line(error)})")
        return (*empty, f"none: the run's data cannot be read ({one_line(error)})")
    if dataset.test_x is None or len(dataset.test_x) == 0:
        return (*empty, "none: the run has no test rows")
    test_x = dataset.test_x.reshape(len(dataset.test_x), -1).float()  # (N, D) in data units
    strip = evenly_spaced_rows(len(test_x), n) if n else torch.zeros(0, dtype=torch.long)
    rest = evenly_spaced_rows(len(test_x), KL_ROWS)
    rows = torch.cat([strip, rest[~torch.isin(rest, strip)]])
    y = None if dataset.test_y is None else dataset.test_y[rows]
    if getattr(vae, "labels", "none") == "required" and y is None:
        return (*empty, "none: the run's test rows have no labels, which its model needs")
    classes = getattr(dataset, "classes", None)
    return rows, test_x[rows], y, classes, f"{len(strip)} test rows evenly spaced over {len(test_x)}"


def _labels_given(vae, y):
    """The rows' labels for a model that takes them (conditional, or semi-supervised: given where known)."""
    return y if getattr(vae, "labels", "none") != "none" else None


@torch.no_grad()
def _z_star(vae, x: torch.Tensor, y) -> torch.Tensor:
    """The decoder's input at the posterior mean of rows ``x`` (T, D): the guide's loc, through a
    flow guide's transforms; (T, K)."""
    if len(x) == 0:
        return torch.zeros(0, vae.z_dim)
    latents = vae.latents(x, _labels_given(vae, y))
    loc = latents["loc"] if "loc" in latents else latents[f"{vae.latent_sites[0]}_loc"]
    scale = latents["scale"] if "scale" in latents else latents[f"{vae.latent_sites[0]}_scale"]
    for transform in getattr(vae.posterior_family.distribution(loc, scale), "transforms", ()):
        loc = transform(loc)
    return loc


def _kl(run: Run, vae, name: str, epoch, x: torch.Tensor, y):
    """(KL per dimension, a list of z_dim, or None where it is not defined; where it comes from)."""
    try:
        metrics = run.metrics()
    except PyrovaeError:
        metrics = {}
    k, site = vae.z_dim, "z" if "z" in vae.latent_sites else vae.latent_sites[0]

    def fits(values):
        return isinstance(values, list) and len(values) == k and all(isinstance(v, (int, float)) for v in values)

    evaluation = metrics.get("evaluation") if isinstance(metrics, dict) else None
    if isinstance(evaluation, dict) and evaluation.get("checkpoint") == name:
        values = (evaluation.get("kl_per_dim") or {}).get(site)
        if fits(values):
            return values, f"KL per dimension on the test rows (evaluate.py, metrics.json evaluation, {name})"
    for entry in reversed(metrics.get("history") or [] if isinstance(metrics, dict) else []):
        if isinstance(entry, dict) and entry.get("epoch") == epoch and isinstance(entry.get("kl_per_dim"), dict):
            values = entry["kl_per_dim"].get(site)
            if fits(values):
                return values, f"KL per dimension on the validation rows at epoch {epoch} (metrics.json history)"
    if len(x) == 0:
        return None, "the run records no KL per dimension"
    from ..infer.diagnostics import kl_per_dim

    torch.manual_seed(0)
    sites = kl_per_dim(vae, vae.to_model_space(x), y=_labels_given(vae, y))
    values = sites[site].values if site in sites else None
    if values is None:
        return None, sites[site].method if site in sites else f"no latent site {site}"
    return values.tolist(), f"KL per dimension computed on {len(x)} test rows ({sites[site].method})"


@torch.no_grad()
def _spread(vae, draws: int = 20000):
    """(mean, standard deviation) of the prior's marginal per dimension, lists of z_dim: exact where the
    distribution has them, else from ``draws`` prior draws on a forked random stream (the sliders' range,
    as ``traversals.png`` of plot_latent.py takes it)."""
    prior = vae.prior.distribution(1, vae.encoder)
    try:
        mean, std = prior.mean.reshape(-1), prior.variance.reshape(-1).sqrt()
    except NotImplementedError:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            z = vae.prior.distribution(draws, vae.encoder).sample()  # (draws, z_dim)
        mean, std = z.mean(0), z.std(0)
    return mean.tolist(), std.tolist()


def _record(vae, run, name, epoch, kl, ranking, sliders, rows, x, y, z, classes, note, command) -> dict:
    k = vae.z_dim
    mean, std = _spread(vae)
    order = list(range(k)) if kl is None else sorted(range(k), key=lambda d: (-kl[d], d))
    dims = [{"index": d, "kl": None if kl is None else kl[d], "mean": mean[d], "low": mean[d] - 3 * std[d],
             "high": mean[d] + 3 * std[d]} for d in order]
    pixels = np.rint(255 * x.clamp(0, 1).numpy()).astype(np.uint8)  # (T, D)
    strip = [{"row": int(r), "label": None if y is None else int(y[i]),
              "pixels": base64.b64encode(pixels[i].tobytes()).decode(), "z": z[i].tolist()}
             for i, r in enumerate(rows[:len(x)])]
    return {
        "explorer": 1,
        "title": run.folder.resolve().name,
        "run": {"run_dir": str(run.folder.resolve()), "checkpoint": name, "epoch": epoch},
        "model": getattr(vae, "kind", "vae"),
        "likelihood": vae.likelihood.name,
        "image_shape": [1, *vae.image_shape] if len(vae.image_shape) == 2 else list(vae.image_shape),  # (C, H, W)
        "z_dim": k,
        "dims": dims,
        "ranking": ranking,
        "sliders": min(sliders, k),
        "start": strip[0]["z"] if strip else mean,
        "start_is": f"the posterior mean of test row {strip[0]['row']}" if strip else "the prior mean",
        "test": {"images": strip, "rows": note,
                 "pixels": "uint8 channel-first row-major, base64: round(255 * clamp(x, 0, 1))"},
        "class_names": classes,
        "drawn": "the decoder's mean E[x|z], each value clamped to [0, 1] and drawn as round(255 * value)",
        "runtime": SPEC,
        "command": command,
    }


def _decoder(record: dict, model: dict, vae) -> None:
    """The decoder's file and inputs from the export's ``model.json`` into ``record``: ``z`` the
    latent input, any other input the class (``labels``: its name, dtype and number of classes)."""
    spec = model["files"]["decoder.onnx"]
    inputs = [{"name": t["name"], "shape": t["shape"], "dtype": t["dtype"]} for t in spec["inputs"]]
    latent = "z" if any(t["name"] == "z" for t in inputs) else inputs[0]["name"]
    record["decoder"] = {"file": "model/decoder.onnx", "latent": latent, "output": "mean", "inputs": inputs}
    others = [t for t in inputs if t["name"] != latent]
    if len(others) > 1:
        raise ConfigError(f"the run's decoder takes {', '.join(t['name'] for t in inputs)}; the explorer feeds z "
                          "and one class")
    record["labels"] = None
    if others:
        label = others[0]
        width = label["shape"][1] if len(label["shape"]) == 2 and isinstance(label["shape"][1], int) else None
        classes = getattr(vae, "num_classes", None) or width
        if classes is None:
            raise ConfigError(f"the run's decoder takes {label['name']!r} besides z, of unknown width; the explorer "
                              "cannot feed it")
        record["labels"] = {"input": label["name"], "dtype": label["dtype"], "classes": int(classes),
                            "one_hot": width is not None}

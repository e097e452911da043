"""The latent explorer (``scripts/explore.py``): a static web page that runs a run's exported
decoder in the browser, :func:`build_explorer`.

The page folder holds ``index.html`` and ``explorer.js`` (the templates in ``page/`` beside this
module), ``explorer.json`` (what the page shows, below), ``model/`` (the run's ONNX export,
:func:`pyrovae.export.export_run`) and ``runtime/`` (onnxruntime-web's WebAssembly build,
:mod:`pyrovae.export.runtime`). Served by any static file server (``python -m http.server`` in
the folder), the page decodes z with onnxruntime-web alone: no Python runs while it is used.

It explores the runs of the built-in models that decode images (:data:`MODELS`): the vae's z; the hvae's top
layer z2, its lower layer z1 following the mean of p(z1|z2) (the export's ``prior_z1``) or set by
hand; the cvae's and m2's z with a class picker feeding the decoder's class input. An m1m2 run is
refused: its M2 decodes M1's latent features, not images; so is a run of a user's own model class
(its networks leave Python through :func:`pyrovae.export.export_run` with ``model=``).

``explorer.json``:

* ``dims``: every latent dimension (of ``latent``: ``z``, the hvae's ``z2``), the one with the most
  KL first, with its slider's range, the prior's marginal mean plus or minus three standard
  deviations; ``sliders`` of them get a slider, and the first two are the 2-D pad's axes. The KL
  per dimension is, in this order of preference: ``evaluate.py``'s on the test rows
  (``metrics.json`` ``evaluation``, where it scored the exported checkpoint), the validation rows'
  at the exported checkpoint's epoch (``metrics.json`` ``history``), or computed here on up to
  :data:`~pyrovae.export.latents.KL_ROWS` test rows. Where it is not defined (a flow guide) the
  dimensions are ordered by the variance of the test rows' posterior means.
* ``test``: ``test_images`` test images evenly spaced over the run's test set, as 8-bit pixels,
  with their posterior means (for a flow guide the flow's image of the base mean, the z a
  reconstruction decodes; the hvae's ``z1`` too) and labels; for a model with a class input,
  ``class``, the class the posterior mean is taken at (:data:`STRIP_CLASS`): a click on one sets
  the sliders to its z and the class picker to its class.
* ``start``, ``start_class``: the z (and class) drawn first: the first test image's, else the prior
  mean (and class 0).
* ``labels``: for a decoder that takes a class besides z, that input and the classes.
* ``lower``: the hvae's z1: its dimensions and sliders' ranges, and p(z1|z2)'s file.

The folder is written under a temporary name beside ``out`` and renamed: ``out`` holds the whole
page or is as it was. ``out`` must be new or an empty folder.
"""
import base64
import json
import shutil
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..data.transforms import evenly_spaced_rows
from ..errors import ConfigError, PyrovaeError, one_line
from ..model.registry import CUSTOM
from ..training.files import write_json
from ..training.run import Run
from .exporter import check_exportable, check_out, export_run, write_folder
from .latents import KL_ROWS, kl_per_dimension, lower_spread, posterior_means, spread
from .runtime import SPEC, find_runtime

#: the page's own files, copied from ``page/``
PAGE = Path(__file__).with_name("page")
TEMPLATES = ("index.html", "explorer.js")
#: the models whose runs the page explores
MODELS = ("vae", "hvae", "cvae", "m2")
#: what sets the class of a test image's z, per model with a class input
STRIP_CLASS = {"cvae": "its label (the cvae encodes and decodes with the given class)",
               "m2": "the class the classifier q(y|x) finds most probable (the image's tooltip gives its label "
                     "too, where the data has one)"}


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
    out = check_out(out, "explore")  # before anything slow
    with Run.open(run_dir) as run:  # a reader: the run's lock, shared
        check_exportable(run, "explore")
        kind = run.record["settings"].get("model", "vae")
        if kind == CUSTOM:
            raise ConfigError(f"{run.folder} is a run of a user's own model class; the explorer draws the images of "
                              f"{', '.join(MODELS[:-1])} and {MODELS[-1]} runs: export your model's networks from "
                              f"Python with pyrovae.export.export_run({str(run.folder)!r}, 'onnx', OUT, model=YourModel)")
        if kind == "m1m2":
            raise ConfigError(f"{run.folder} is an m1m2 run, whose M2 decodes M1's standardized latent features, not "
                              f"images; the explorer draws the images of {', '.join(MODELS[:-1])} and {MODELS[-1]} runs: "
                              "explore the vae run it was trained on (its --m1-run)")
        state = run.checkpoint(checkpoint)
        vae = run.model(checkpoint, "cpu", state=state)
        if getattr(vae, "image_shape", None) is None:
            raise ConfigError(f"{run.folder} was trained on a table, not images; the explorer draws the decoded "
                              "image: use scripts/export.py for the run's networks")
        install = find_runtime(runtime, fetch, log)  # before the slow steps: a missing runtime is refused first
        name, epoch = run.path(checkpoint).name, state.get("epoch")
        rows, x, y, classes, note = _test_rows(run, vae, test_images, log)
        kl, ranking = kl_per_dimension(run, vae, name, epoch, x, y)
        strip = posterior_means(vae, x[:test_images], None if y is None else y[:test_images])
        if kl is None:
            z = strip["z"]
            kl = None if len(z) < 2 else z.var(0).tolist()
            ranking = ("by the variance of the test images' posterior means (the KL per dimension is not defined: "
                       f"{ranking})" if kl is not None else f"by index ({ranking}; no test images)")
        record = _record(vae, run, name, epoch, kl, ranking, sliders, rows, x[:test_images],
                         None if y is None else y[:test_images], strip, classes, note, command)
        if getattr(vae, "kind", None) == "hvae":
            record["lower"] = _lower(run, vae, name, epoch, x, y)

        def fill(folder: Path) -> dict:
            export_run(run.folder, "onnx", folder / "model", checkpoint, log=lambda line: None, command=command)
            _decoder(record, json.loads((folder / "model" / "model.json").read_text(encoding="utf-8")), vae)
            install(folder / "runtime")
            for template in TEMPLATES:
                shutil.copyfile(PAGE / template, folder / template)
            write_json(folder / "explorer.json", record)
            return record

        log(f"writing the explorer of {run.folder / name} (epoch {epoch}) into {out}")
        write_folder(out, fill, "the explorer")
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


def _dims(kl, mean, std) -> list:
    """Each dimension, the one with the most KL first (by index where ``kl`` is None), with its
    slider's range: the mean plus or minus three standard deviations."""
    order = list(range(len(mean))) if kl is None else sorted(range(len(mean)), key=lambda d: (-kl[d], d))
    return [{"index": d, "kl": None if kl is None else kl[d], "mean": mean[d], "low": mean[d] - 3 * std[d],
             "high": mean[d] + 3 * std[d]} for d in order]


def _record(vae, run, name, epoch, kl, ranking, sliders, rows, x, y, means, classes, note, command) -> dict:
    k, kind = vae.z_dim, getattr(vae, "kind", "vae")
    mean, std = spread(vae)
    pixels = np.rint(255 * x.clamp(0, 1).numpy()).astype(np.uint8)  # (T, D)
    strip = []
    for i, r in enumerate(rows[:len(x)]):
        item = {"row": int(r), "label": None if y is None else int(y[i]),
                "pixels": base64.b64encode(pixels[i].tobytes()).decode(), "z": means["z"][i].tolist()}
        if "class" in means:
            item["class"] = int(means["class"][i])
        if "z1" in means:
            item["z1"] = means["z1"][i].tolist()
        strip.append(item)
    top = "z2" if kind == "hvae" else "z"
    start_is = f"the posterior mean of test row {strip[0]['row']}" if strip else "the prior mean"
    if kind == "hvae":
        start_is = f"{start_is.replace('the posterior mean of', 'the posterior mean q(z2|x) of')}, z1 at the mean of p(z1|z2)"
    return {
        "explorer": 1,
        "title": run.folder.resolve().name,
        "run": {"name": run.folder.resolve().name, "run_id": run.run_id, "checkpoint": name, "epoch": epoch},
        "model": kind,
        "likelihood": vae.likelihood.name,
        "image_shape": [1, *vae.image_shape] if len(vae.image_shape) == 2 else list(vae.image_shape),  # (C, H, W)
        "z_dim": k,
        "latent": top,
        "dims": _dims(kl, mean, std),
        "ranking": ranking,
        "sliders": min(sliders, k),
        "start": strip[0]["z"] if strip else mean,
        "start_class": strip[0].get("class", 0) if strip else 0,
        "start_is": start_is,
        "test": {"images": strip, "rows": note,
                 "pixels": "uint8 channel-first row-major, base64: round(255 * clamp(x, 0, 1))",
                 "class": STRIP_CLASS.get(kind)},
        "class_names": classes,
        "drawn": "the decoder's mean E[x|z], each value clamped to [0, 1] and drawn as round(255 * value)",
        "runtime": SPEC,
        "command": command,
    }


def _lower(run, hvae, name, epoch, x, y) -> dict:
    """The hvae's lower layer z1 on the page: its sliders (most KL first, spanning the model's
    marginal of z1 plus or minus three standard deviations) and p(z1|z2)'s file, whose mean z1
    follows until a z1 slider moves or a test image is chosen."""
    kl, ranking = kl_per_dimension(run, hvae, name, epoch, x, y, site="z1")
    mean, std = lower_spread(hvae)
    return {"input": "z1", "z_dim": hvae.z1_dim, "dims": _dims(kl, mean, std), "ranking": ranking,
            "prior": {"file": "model/prior_z1.onnx", "input": "z2", "output": "loc"},
            "follows": "the mean of p(z1|z2) at the sliders' z2, until a z1 slider moves or a test image sets z1 to "
                       "its posterior mean q(z1|x,z2)"}


def _decoder(record: dict, model: dict, vae) -> None:
    """The decoder's file and inputs from the export's ``model.json`` into ``record``: ``z`` (the
    hvae's ``z2`` and ``z1``) the latent inputs, any other input the class (``labels``: its name,
    dtype and number of classes)."""
    spec = model["files"]["decoder.onnx"]
    inputs = [{"name": t["name"], "shape": t["shape"], "dtype": t["dtype"]} for t in spec["inputs"]]
    names = {t["name"] for t in inputs}
    latents = ("z2", "z1") if record.get("lower") else ("z",) if "z" in names else (inputs[0]["name"],)
    if not set(latents) <= names:
        raise ConfigError(f"the run's decoder takes {', '.join(t['name'] for t in inputs)}, not "
                          f"{' and '.join(latents)}; the explorer cannot feed it")
    record["decoder"] = {"file": "model/decoder.onnx", "latent": latents[0], "output": "mean", "inputs": inputs}
    others = [t for t in inputs if t["name"] not in latents]
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

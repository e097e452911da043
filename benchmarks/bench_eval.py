r"""The importance-sampled log-likelihood against the floor of its matrix products, per model kind.

``python scripts/bench_eval.py [--num-samples 5000] [--images 4] [--rounds 3] [--threads 1] [--out DIR]``

For each model kind (the 784-400-50 MLP VAE; gated networks with a VampPrior; the two-level
hvae with a VampPrior; the conv VAE), untrained (the arithmetic of an untrained model is the
same), it times per image, in interleaved rounds in one process:

* **pyrovae**: :func:`pyrovae.log_likelihood` at K = ``--num-samples``;
* **traced**: the same estimate read off Pyro traces of the model and guide, one pair per
  block of samples (:meth:`pyrovae.model.base.Model.log_weights`, blocks of up to 2**24
  decoder outputs), as :func:`pyrovae.log_likelihood` computed it before it took the models'
  :meth:`~pyrovae.model.base.Model.log_weight_blocks`;
* **floor**: the matrix products and convolutions (``aten.mm``, ``addmm``, ``bmm``,
  ``baddbmm``, ``convolution``) that the pyrovae estimate runs for those images and samples,
  recorded once with their shapes, dtypes and arguments and then run alone on random inputs
  of those shapes: what no estimator of these networks can skip.

It writes ``<out>/<stem>.md`` and ``<out>/<stem>.json``: the CPU, the thread count, the
versions, the seconds and CPU seconds per image of each row (median over rounds, with the
range), the ratios to the floor (taken within each round) and the command.
"""
import json
import math
import platform
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

import pyro
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import pyrovae
from pyrovae.atomic import replace_whole
from pyrovae.cli.common import _command, _Help, _Parser
from pyrovae.environment import cpu_model
from pyrovae.model.hvae import HVAE

#: the products the floor counts
PRODUCTS = {"mm", "addmm", "bmm", "baddbmm", "convolution", "addmv", "mv", "dot"}
KINDS = ("vae-mlp", "gated-vamp", "hvae-vamp", "conv")


def build(kind: str, tiny: bool = False) -> pyrovae.Model:
    """The untrained model of ``kind`` (``tiny``: a few units each, for tests)."""
    h, z, c = ((16,), 4, 5) if tiny else ((400,), 50, 500)
    if kind == "vae-mlp":
        return pyrovae.VAE(x_dim=784, z_dim=z, hidden=h)
    wide = (16, 16) if tiny else (300, 300)
    z_vamp = 4 if tiny else 40
    if kind == "gated-vamp":
        return pyrovae.VAE(z_dim=z_vamp, hidden=wide, arch="gated", prior="vamp", prior_options={"components": c})
    if kind == "hvae-vamp":
        return HVAE(z_dim=z_vamp, hidden=wide, arch="gated", prior="vamp", prior_options={"components": c})
    if kind == "conv":
        return pyrovae.VAE(z_dim=z, hidden=(16,) if tiny else (256,), arch="conv",
                           channels=(4, 8) if tiny else (32, 64))
    raise ValueError(kind)


def describe(kind: str, tiny: bool) -> str:
    if tiny:
        return f"{kind} (tiny)"
    return {"vae-mlp": "VAE, MLP 784-400-50, N(0, I) prior, Bernoulli",
            "gated-vamp": "VAE, gated MLP 784-300-300-40, VampPrior (500 pseudo-inputs)",
            "hvae-vamp": "hvae, gated 300-300, z1 = z2 = 40, VampPrior (500)",
            "conv": "VAE, conv (32, 64) + 256, z 50, Bernoulli"}[kind]


@torch.no_grad()
def traced_log_likelihood(model, x: torch.Tensor, num_samples: int, batch_size: int = 100,
                          max_elements: int = 2**24) -> torch.Tensor:
    """The estimate from Pyro traces, one model/guide trace pair per block of samples (the
    estimator before the models' ``log_weight_blocks``), same blocks of images."""
    out_dim = model.x_dim * model.likelihood.outputs_per_pixel * model.passes_per_sample
    results, per_pass = [], None
    with pyro.validation_enabled(False):
        for chunk in x.split(batch_size):
            if per_pass is None:
                per_pass = max(1, min(num_samples, max_elements // (len(chunk) * out_dim)))
            acc = torch.full((len(chunk),), -math.inf, dtype=torch.float64)
            for start in range(0, num_samples, per_pass):
                log_w = model.log_weights(chunk, None, min(per_pass, num_samples - start)).double()
                acc = torch.logaddexp(acc, torch.logsumexp(log_w, dim=0))
            results.append(acc - math.log(num_samples))
    return torch.cat(results).float()


class _Recorder(TorchDispatchMode):
    """Records every product (``PRODUCTS``) as (op, argument specs) while it runs."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func.overloadpacket.__name__ in PRODUCTS:
            spec = lambda a: ("T", tuple(a.shape), tuple(a.stride()), a.dtype) if isinstance(  # noqa: E731
                a, torch.Tensor) else a
            self.calls.append((func, [spec(a) for a in args], {k: spec(v) for k, v in (kwargs or {}).items()}))
        return func(*args, **(kwargs or {}))


def _floor(calls) -> Callable[[], None]:
    """A function that runs the recorded products alone, on random inputs of the same layout
    (one input per distinct layout, made once)."""
    made: Dict[tuple, torch.Tensor] = {}

    def tensor(spec):
        if not (isinstance(spec, tuple) and spec and spec[0] == "T"):
            return spec
        if spec not in made:
            _, shape, stride, dtype = spec
            size = 1 + sum((n - 1) * s for n, s in zip(shape, stride)) if all(shape) else 0
            made[spec] = torch.randn(size, dtype=dtype).as_strided(shape, stride)
        return made[spec]

    prepared = [(func, [tensor(a) for a in args], {k: tensor(v) for k, v in kwargs.items()})
                for func, args, kwargs in calls]

    def run():
        with torch.no_grad():
            for func, args, kwargs in prepared:
                func(*args, **kwargs)
    return run


def _timed(fn: Callable[[], None]) -> tuple:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def bench_kind(kind: str, num_samples: int, images: int, rounds: int, tiny: bool = False,
               traced: bool = True) -> dict:
    """Times of one model kind (see the module docstring): per row, per round, seconds per image."""
    torch.manual_seed(0)
    model = build(kind, tiny).eval()
    x = (torch.rand(images, model.x_dim) < 0.3).float()
    recorder = _Recorder()
    with recorder:
        pyro.set_rng_seed(0)
        pyrovae.log_likelihood(model, x, num_samples=num_samples)  # also the warm-up
    floor = _floor(recorder.calls)
    floor()
    systems = {"pyrovae": lambda: pyrovae.log_likelihood(model, x, num_samples=num_samples),
               **({"traced": lambda: traced_log_likelihood(model, x, num_samples)} if traced else {}),
               "floor": floor}
    times = {name: {"wall": [], "cpu": []} for name in systems}
    names = list(systems)
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:  # the order rotated each round
            wall, cpu = _timed(systems[name])
            times[name]["wall"].append(wall / images)
            times[name]["cpu"].append(cpu / images)
    rows = []
    for name in names:
        ratios = [a / b for a, b in zip(times[name]["wall"], times["floor"]["wall"])]
        cpu_ratios = [a / max(b, 1e-9) for a, b in zip(times[name]["cpu"], times["floor"]["cpu"])]
        rows.append({"system": name, "s_per_image": statistics.median(times[name]["wall"]),
                     "s_per_image_range": [min(times[name]["wall"]), max(times[name]["wall"])],
                     "cpu_s_per_image": statistics.median(times[name]["cpu"]),
                     "ratio_to_floor": statistics.median(ratios), "ratio_range": [min(ratios), max(ratios)],
                     "cpu_ratio_to_floor": statistics.median(cpu_ratios),
                     "cpu_ratio_range": [min(cpu_ratios), max(cpu_ratios)]})
    return {"kind": kind, "model": describe(kind, tiny), "products": len(recorder.calls), "rows": rows}


def _markdown(report: dict) -> str:
    lines = [f"# Importance-sampled log p(x) against its matrix products on {report['cpu']}", "",
             f"torch {report['torch']}, pyro {report['pyro']}, Python {report['python']}; {report['threads']} "
             f"thread(s); K = {report['num_samples']} samples per image, {report['images']} images, "
             f"{report['rounds']} rounds (order rotated each round), untrained models. Seconds per image: median "
             "over rounds (min-max); ratios to the floor taken within each round. **pyrovae**: "
             "`pyrovae.log_likelihood`; **traced**: the same estimate from one Pyro model/guide trace pair per "
             "block of up to 2**24 decoder outputs (the estimator as it was); **floor**: the matrix products "
             "and convolutions the pyrovae estimate runs, alone, on random inputs of the same shapes. CPU x floor: "
             "the same ratio of the process's CPU seconds (less disturbed than wall time on a shared machine).", "",
             "| model | system | s / image | CPU s / image | x floor | CPU x floor |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for kind in report["kinds"]:
        for row in kind["rows"]:
            lo, hi = row["s_per_image_range"]
            rlo, rhi = row["ratio_range"]
            clo, chi = row["cpu_ratio_range"]
            lines.append(f"| {kind['model']} | {row['system']} | {row['s_per_image']:.4f} ({lo:.4f}-{hi:.4f}) | "
                         f"{row['cpu_s_per_image']:.4f} | {row['ratio_to_floor']:.2f}x ({rlo:.2f}-{rhi:.2f}) | "
                         f"{row['cpu_ratio_to_floor']:.2f}x ({clo:.2f}-{chi:.2f}) |")
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    p = _Parser(
        formatter_class=_Help,
        description="Time the importance-sampled log p(x) per image for each model kind against the floor of "
                    "its matrix products, and against the estimate from Pyro traces; writes <out>/<stem>.{md,json}.")
    p.add_argument("--num-samples", type=int, default=5000, help="importance samples K per image")
    p.add_argument("--images", type=int, default=4, help="images scored per round")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    p.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS), help="the model kinds to time")
    p.add_argument("--no-traced", dest="traced", action="store_false", help="leave the traced rows out")
    p.add_argument("--tiny", action="store_true", help="tiny networks (a test of the program, not a timing)")
    p.add_argument("--out", default="runs/bench", help="folder of the report")
    p.add_argument("--stem", default="eval", help="file name of the report, without .md/.json")
    args = p.parse_args(argv)
    if min(args.num_samples, args.images, args.rounds, args.threads) <= 0:
        p.exit(2, "error: --num-samples, --images, --rounds and --threads must be positive integers\n")
    if not args.stem or "/" in args.stem or args.stem.startswith("."):
        p.exit(2, f"error: --stem must be a plain file name, got {args.stem!r}\n")
    out = Path(args.out)
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        p.exit(2, f"error: --out {args.out} is not a folder; give a folder to write the report into\n")
    torch.set_num_threads(args.threads)
    report = {"cpu": cpu_model(), "threads": args.threads, "torch": torch.__version__, "pyro": pyro.__version__,
              "python": platform.python_version(), "num_samples": args.num_samples, "images": args.images,
              "rounds": args.rounds,
              "command": _command("scripts/bench_eval.py", argv),
              "kinds": [bench_kind(kind, args.num_samples, args.images, args.rounds, args.tiny, args.traced)
                        for kind in args.kinds]}
    out.mkdir(parents=True, exist_ok=True)
    replace_whole(out / f"{args.stem}.json", lambda f: f.write(json.dumps(report, indent=2) + "\n"), mode="w")
    replace_whole(out / f"{args.stem}.md", lambda f: f.write(_markdown(report)), mode="w")
    print(_markdown(report))
    return 0

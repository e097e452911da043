"""The test-NLL table of statically binarized MNIST, behind ``scripts/nll_table.py``.

One row per run folder that ``scripts/evaluate.py`` has scored (``metrics.json`` with an
``evaluation``), beside the published anchors (one and two stochastic layers); each row
names the commands that reproduce it: the training command (and any ``--resume``) and
the evaluation. Writes ``<out>.md`` and ``<out>.json``.
"""
from pathlib import Path
from typing import Iterable, List, Optional

from pyrovae.cli.common import _command, _guarded, _Help, _Parser
from pyrovae.errors import ConfigError
from pyrovae.training.checkpoint import write_json
from pyrovae.training.files import atomic_write
from pyrovae.training.run import Run

#: published test NLLs on this split (K: importance samples of their estimate)
ANCHORS = [
    {"model": "VAE, MLP, standard-normal prior (Burda et al. 2016, IWAE paper, App. D)", "test_nll": 88.71, "k": 5000},
    {"model": "VAE, MLP, standard-normal prior (Rezende & Mohamed 2015)", "test_nll": 89.9, "k": 5000},
    {"model": "VAE, MLP, standard-normal prior (pythae reproduction)", "test_nll": 89.78, "k": 200},
    {"model": "IWAE, k=50 (Burda et al. 2016)", "test_nll": 87.10, "k": 5000},
    {"model": "VAE with a VampPrior (Tomczak & Welling 2018)", "test_nll": 85.57, "k": 5000},
    {"model": "HVAE, two stochastic layers, standard-normal prior (Tomczak & Welling 2018; about)", "test_nll": 86.0,
     "k": 5000},
    {"model": "HVAE with a VampPrior (Tomczak & Welling 2018)", "test_nll": 83.19, "k": 5000},
    {"model": "convHVAE with a VampPrior (Tomczak & Welling 2018)", "test_nll": 81.09, "k": 5000},
]
#: what the table aims at: the best MLP row and the best conv row at or below these, nats
GOALS = {"mlp": 83.0, "conv": 81.0}


def collect(run_dirs: Iterable) -> List[dict]:
    rows = []
    for run_dir in map(Path, run_dirs):
        with Run.open(run_dir) as run:  # a reader: the run's record, under its shared lock, its settings checked
            run.config  # noqa: B018
            metrics, config = run.metrics(), run.record
        if "evaluation" not in metrics:
            raise ConfigError(f"{run_dir} has no test NLL yet; run python scripts/evaluate.py {run_dir} first")
        s, e = config["settings"], metrics["evaluation"]
        shape = f"channels {s['channels']}, dense {s['hidden'][0]}" if s["arch"] == "conv" else f"hidden {s['hidden']}"
        shape += _parts(s)
        if s.get("model", "vae") != "vae":
            shape = f"{s['model'].upper()}, {shape}"
        commands = [metrics["command"]] + [r["command"] for r in metrics.get("resumes", []) if r.get("command")]
        rows.append({
            "run": str(run_dir), "architecture": f"{s['arch']}, {shape}, z {s['z_dim']}",
            "elbo": config["resolved"]["elbo_class"].rsplit(".", 1)[-1], "particles": s["num_particles"],
            "epochs": len(metrics["history"]), "best_epoch": metrics["best"]["epoch"] if metrics.get("best") else None,
            "stopped_early": metrics.get("stopped_early", False),
            "wall_hours": sum(h["seconds"] for h in metrics["history"]) / 3600, "device": metrics["device"],
            "test_elbo": e["test_elbo"], "test_nll": e["test_nll"], "test_nll_se": e["test_nll_se"],
            "num_samples": e["num_samples"], "num_test_images": e["num_test_images"], "checkpoint": e["checkpoint"],
            "test_images": e.get("test_images", "all"),
            "active_units": e["active_units"], "train_commands": commands,
            "evaluate_command": e.get("command") or f"python scripts/evaluate.py {run_dir} --num-samples {e['num_samples']}",
            "weights": str(run_dir / e["checkpoint"]) if (run_dir / e["checkpoint"]).is_file() else None,
        })
    return sorted(rows, key=lambda r: r["test_nll"])


def _parts(settings: dict) -> str:
    """The prior and guide of a run, where they are not the standard normal and the Gaussian."""
    prior, guide = settings.get("prior", "normal"), settings.get("guide", "normal")
    text = ""
    if prior != "normal":
        k = (settings.get("prior_options") or {}).get("components")
        text += f", {'VampPrior' if prior == 'vamp' else 'mixture prior'}" + (
            f" ({k} {'pseudo-inputs' if prior == 'vamp' else 'components'})" if k else "")
    if guide != "normal":
        steps = (settings.get("guide_options") or {}).get("steps", 2)
        text += f", {guide.upper()} guide ({steps} steps)"
    return text


def write_table(run_dirs: Iterable, out, command: str, log=print) -> dict:
    rows = collect(run_dirs)
    result = {"command": command, "rows": rows, "anchors": ANCHORS, "goal": dict(GOALS)}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json(out.with_suffix(".json"), result)
    atomic_write(out.with_suffix(".md"), lambda f: f.write(_markdown(result)), mode="w")
    log(out.with_suffix(".md").read_text())
    return result


def _markdown(r: dict) -> str:
    lines = ["# Test NLL on statically binarized MNIST (Larochelle & Murray split)", "",
             "Trained on the 50,000 training images, chosen by the validation ELBO of the 10,000 validation "
             "images (best.pt), scored once on the 10,000 test images: NLL = -log (1/K) sum_k p(x, z_k) / "
             "q(z_k | x), nats per image, ± its standard error over images; test ELBO with the closed-form KL where one exists "
             "(else log q - log p), 10 particles. Training time: the sum of the epochs' seconds (no evaluation, no start-up).", "",
             "| model | ELBO | particles | epochs (best) | training time | device | test ELBO | test NLL (K) |",
             "| --- | --- | ---: | ---: | ---: | --- | ---: | ---: |"]
    for row in r["rows"]:
        lines.append(f"| pyrovae {row['architecture']} | {row['elbo']} | {row['particles']} | {row['epochs']} "
                     f"({row['best_epoch']}) | {row['wall_hours']:.2f} h | {row['device']} | {row['test_elbo']:.2f} | "
                     f"**{row['test_nll']:.2f}** ± {row['test_nll_se']:.2f} (K={row['num_samples']}; "
                     f"{'all ' + format(row['num_test_images'], ',') if row['test_images'] == 'all' else row['test_images']} test images) |")
    for anchor in r["anchors"]:
        lines.append(f"| {anchor['model']} | | | | | | | {anchor['test_nll']:.2f} (K={anchor['k']}) |")
    best = {kind: min((row["test_nll"] for row in r["rows"] if ("conv," in row["architecture"]) == (kind == "conv")),
                      default=None) for kind in ("conv", "mlp")}
    reached = "; ".join(f"{kind}: best {best[kind]:.2f}, " + ("reached" if best[kind] <= goal else
                                                             f"{best[kind] - goal:.2f} nats short")
                        for kind, goal in (("mlp", r["goal"]["mlp"]), ("conv", r["goal"]["conv"])) if best[kind] is not None)
    lines += ["", f"Goals: an MLP row at <= {r['goal']['mlp']:.1f} nats, a conv row at <= {r['goal']['conv']:.1f} "
              f"({reached}).", "", "Commands that reproduce each row:", ""]
    for row in r["rows"]:
        lines.append(f"- `{row['run']}`: " + "; then ".join(f"`{c}`" for c in row["train_commands"])
                     + f"; scored by `{row['evaluate_command']}`; weights: "
                     + (f"`{row['weights']}` (`pyrovae.load`)" if row["weights"] else "not kept"))
    lines += ["", f"Table: `{r['command']}`", ""]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/nll_table.py RUN_DIR ...``: the test-NLL table of evaluated runs."""
    p = _Parser(description="Collect evaluated runs (scripts/evaluate.py) into a test-NLL table beside the "
                "published anchors: <out>.md and <out>.json.", formatter_class=_Help)
    p.add_argument("run_dirs", nargs="+", help="run folders scored by scripts/evaluate.py")
    p.add_argument("--out", default="runs/nll_table", help="path of the table, without suffix")
    args = p.parse_args(argv)
    return _guarded(lambda: write_table(args.run_dirs, args.out, command=_command("scripts/nll_table.py", argv)),
                    args.out)

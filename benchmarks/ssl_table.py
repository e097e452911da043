r"""Semi-supervised classification with M2 against the same classifier trained on the labels alone
(``scripts/ssl_table.py``).

For each number of labels per class and each seed, one M2 run (``--model m2``, its labelled rows
drawn with ``label_seed`` = the seed, its training with ``seed`` = the seed) and one supervised
baseline: the network of M2's classifier :math:`q(y \mid x)` (the same widths and units), trained
by Adam on the cross-entropy of the *same* labelled rows only, through the same per-minibatch
preprocessing (fresh binarization of grey digits every step), for a fixed number of full-batch
steps (nothing chooses the step: there is no label-free validation score for a classifier), the
last step scored. Both are scored on all the run's test rows, prepared as the run scores them.
M2's ``best.pt`` is chosen by its validation ELBO, which uses no label; its test accuracy is
reported, never used to choose. The table gives mean and standard deviation over the seeds. With
``--stack`` (M1+M2) each M2 row is an ``m1m2`` run on the VAE (M1) of its seed, a run folder that
classifies pixels; its baseline learns from the rows its M2 learned from (:func:`run_rows`).
"""
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F

from pyrovae.cli.common import _command, _guarded
from pyrovae.cli.svi_train import _flags_given, _train_config, build_parser
from pyrovae.data.datasets import load_dataset
from pyrovae.data.prepare import prepare_data
from pyrovae.data.transforms import make_transform
from pyrovae.errors import ConfigError, DataError
from pyrovae.infer.evaluation import accuracy
from pyrovae.model.networks import mlp
from pyrovae.training.config import TrainConfig
from pyrovae.training.files import as_recorded, read_json, write_json, write_report
from pyrovae.training.resume import resume
from pyrovae.training.run import Run
from pyrovae.training.stacked import run_features
from pyrovae.training.trainer import train

#: the seed of the labelled rows and the training of the runs that choose alpha (not a seed of a table row)
TUNING_SEED = 100


def supervised_baseline(run_dir, steps: int = 1000, lr: float = 1e-3, seed: int = 0, dataset=None) -> dict:
    """The classifier of M2's run ``run_dir`` trained on that run's labelled rows alone (module
    docstring): its test accuracy over all the run's test rows, and what it was trained on
    (``dataset``: the run's data, where they were given in Python)."""
    config, model, data = run_rows(run_dir, dataset)
    labelled = data.train_y >= 0
    x, y = data.train_x[labelled], data.train_y[labelled]  # (N_l, D), (N_l,)
    transform = make_transform(data.transform, data.levels)
    torch.manual_seed(seed)
    net = mlp([model.x_dim, *config.hidden, model.num_classes], model.activation,
              gated=config.arch == "gated")  # x -> logits: the network of M2's q(y|x)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    for _ in range(steps):
        batch = x if transform is None else transform(x)
        loss = F.cross_entropy(net(batch), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        right = (net(data.test_x).argmax(-1) == data.test_y).float().mean().item()
    return {"test_accuracy": right, "labelled_rows": int(labelled.sum()), "steps": steps, "lr": lr, "seed": seed,
            "num_test": len(data.test_y), "final_train_loss": loss.item()}


def ssl_table(base: TrainConfig, out_dir, labels_per_class: Sequence[int], seeds: Sequence[int],
              baseline_steps: int = 1000, log: Callable[[str], None] = print, command: str = None,
              stack: Optional[dict] = None, alphas: Sequence[float] = ()) -> dict:
    """Train (or resume, or skip when finished) one M2 run per (labels per class, seed) into
    ``out_dir/m2-<n>-seed<s>``, its baseline beside it, and write ``out_dir/table.{md,json}``.

    ``stack`` (``{"epochs", "z_dim", "hidden"}``): M1+M2 (Kingma et al. 2014): per seed a VAE (M1)
    is trained first on the training rows without their labels (``out_dir/m1-seed<s>``), and each M2
    row is an ``m1m2`` run on it (a Gaussian likelihood on M1's standardized posterior means); M2 and
    the baseline see the same rows, the same labelled rows, the same test rows. ``alphas``: first choose ``alpha`` among them
    (:func:`tune_alpha`, with the first label count and the seed :data:`TUNING_SEED`)."""
    out = Path(out_dir)
    _check_labels(base, log)
    out.mkdir(parents=True, exist_ok=True)
    if alphas:  # alpha chosen first, on validation rows, with a seed of its own
        base = replace(base, alpha=tune_alpha(base, out, labels_per_class[0], alphas, TUNING_SEED, stack, log))
    rows: List[dict] = []
    for n in labels_per_class:
        for seed in seeds:
            folder = out / f"m2-{n}-seed{seed}"
            config = replace(base, model="m2", labels_per_class=n, seed=seed, label_seed=seed, out=str(folder))
            if stack is not None:
                config = _stacked(base, train_m1(base, stack, out / f"m1-seed{seed}", seed, log), n, seed, folder)
            metrics = _finished(folder, config, log)
            baseline = supervised_baseline(folder, baseline_steps, seed=seed)
            with Run.open(folder, write=True):  # the baseline is written into the run's folder under its lock
                write_json(folder / "baseline.json", baseline)
            rows.append({"labels_per_class": n, "seed": seed, "m2": test_accuracy_of(folder),
                         "baseline": baseline["test_accuracy"], "labelled_rows": baseline["labelled_rows"],
                         "m2_best_epoch": metrics["best"]["epoch"], "epochs": len(metrics["history"]),
                         "num_test": baseline["num_test"], "run": str(folder)})
            log(f"{n} labels per class, seed {seed}: M2 {rows[-1]['m2']:.2%}, baseline {rows[-1]['baseline']:.2%}")
    tuning = read_json(out / "tuning.json") if alphas else None
    result = {"command": command, "dataset": base.dataset, "settings": base.to_dict(), "baseline_steps": baseline_steps,
              "stack": stack, "tuning": tuning, "rows": rows, "summary": _summary(rows, labels_per_class)}
    write_report(out, "table", result, _markdown(result))
    return result


def _check_labels(base: TrainConfig, log) -> None:
    """Refuse, before anything trains, data without class labels."""
    data = load_dataset(base.dataset, base.data_dir, download=base.download, log=log, image_size=base.image_size,
                        test_size=base.test_size, split_seed=base.split_seed, label_column=base.label_column)
    if not data.summary().get("num_classes"):
        raise DataError(f"{data.name} has no class labels, and the table compares classifiers; give a labelled "
                        "source (class folders, an .npz with y, a table's --label-column, a labelled named set)")


def train_m1(base: TrainConfig, stack: dict, folder: Path, seed: int, log) -> Path:
    """``folder``, holding M1 of ``seed``: a VAE trained (or resumed, or kept) on the training rows alone,
    no labels, ``best.pt`` chosen by its validation ELBO; the M2 rows of the seed are ``m1m2`` runs on it."""
    config = replace(base, model="vae", labels_per_class=None, label_seed=None, seed=seed, epochs=stack["epochs"],
                     z_dim=stack["z_dim"], hidden=tuple(stack["hidden"]), elbo="meanfield", prior="normal",
                     guide="normal", arch="mlp", kl_warmup=0, out=str(folder))
    _finished(folder, config, log)
    return folder


def _stacked(base: TrainConfig, m1: Path, n: int, seed: int, folder: Path) -> TrainConfig:
    """An M1+M2 row: an ``m1m2`` run on the VAE in ``m1``, ``n`` labels per class drawn with ``seed``, into ``folder``."""
    return replace(base, model="m1m2", m1_run=str(m1), labels_per_class=n, seed=seed, label_seed=seed,
                   out=str(folder), likelihood="gaussian", likelihood_options={}, arch="mlp")


def run_rows(run_dir, dataset=None):
    """(config, model, data): the settings of the run in ``run_dir``, the model of its ``best.pt`` that
    classifies the rows, the rows prepared as it saw them (an ``m1m2`` run: its M2, and M1's posterior
    means standardized by the training rows', :func:`~pyrovae.training.stacked.run_features`)."""
    with Run.open(run_dir) as run:
        config = run.config
        if config.model != "m1m2":
            model = run.model("best")
            return config, model, prepare_data(config, run.dataset(dataset, log=lambda line: None), model.likelihood)
    model, rows = run_features(run_dir, dataset, log=lambda line: None)
    return config, model.m2, prepare_data(replace(config, binarize="none", dequantize="none", standardize="columns"),
                                          rows, model.m2.likelihood)


def tune_alpha(base: TrainConfig, out_dir, labels_per_class: int, alphas: Sequence[float], seed: int,
               stack: Optional[dict] = None, log: Callable[[str], None] = print) -> float:
    """The ``alpha`` of the highest validation accuracy (``best.pt``, chosen by the validation ELBO) among ``alphas``,
    each an M2 (``stack``: M1+M2) run with ``labels_per_class`` labels drawn with ``seed`` (a seed the table does not
    use): the validation rows' labels choose alpha, the test rows choose nothing. Writes ``out_dir/tuning.json``."""
    out = Path(out_dir)
    m1 = None if stack is None else train_m1(base, stack, out / f"m1-seed{seed}", seed, log)
    tried = []
    for alpha in alphas:
        folder = out / f"tune-alpha{alpha:g}"
        config = replace(base, model="m2", alpha=float(alpha), labels_per_class=labels_per_class, seed=seed,
                         label_seed=seed, out=str(folder))
        if stack is not None:
            config = replace(_stacked(base, m1, labels_per_class, seed, folder), alpha=float(alpha))
        metrics = _finished(folder, config, log)
        best = next(h for h in metrics["history"] if h["epoch"] == metrics["best"]["epoch"])
        tried.append({"alpha": float(alpha), "valid_accuracy": best["valid_accuracy"], "best_epoch": best["epoch"]})
        log(f"alpha {alpha:g}: validation accuracy {best['valid_accuracy']:.2%} at epoch {best['epoch']}")
    chosen = max(tried, key=lambda t: t["valid_accuracy"])["alpha"]
    write_json(out / "tuning.json", {"labels_per_class": labels_per_class, "seed": seed, "tried": tried,
                                     "chosen": chosen, "rule": "the highest validation accuracy at best.pt"})
    return chosen


#: settings a kept run may differ in from the ones asked for (where it runs, how it shows)
_RUNNING = {"out", "progress", "threads", "cuda", "data_dir", "download", "epochs"}


def _finished(folder: Path, config: TrainConfig, log) -> dict:
    """The metrics of the run in ``folder``: trained, or resumed to its end (also when it stopped
    before its first epoch's record), or read when it is done; a folder holding a run of other
    settings is refused in one line."""
    if not (folder / "checkpoint.pt").is_file():
        return train(config, log=log)
    with Run.open(folder) as run:  # a reader: the kept run's settings and record
        asked, kept = as_recorded(config.validate().to_dict()), as_recorded(run.config.to_dict())  # both resolved alike
        differs = sorted(k for k in set(asked) & set(kept) - _RUNNING if asked[k] != kept[k])
        if differs:
            raise ConfigError(f"{folder} holds a run whose {differs[0]} is {kept[differs[0]]!r}, not {asked[differs[0]]!r}; "
                              "give the table another --out, or remove that folder")
        metrics = run.metrics() if (folder / "metrics.json").is_file() else None
    if metrics is not None and (metrics.get("stopped_early") or len(metrics["history"]) >= config.epochs):
        return metrics
    return resume(folder, log=log, epochs=config.epochs)


def _summary(rows: List[dict], labels_per_class: Sequence[int]) -> List[dict]:
    summary = []
    for n in labels_per_class:
        part = [r for r in rows if r["labels_per_class"] == n]
        summary.append({"labels_per_class": n, "seeds": len(part),
                        "m2_mean": statistics.mean(r["m2"] for r in part), "m2_sd": _spread(part, "m2"),
                        "baseline_mean": statistics.mean(r["baseline"] for r in part),
                        "baseline_sd": _spread(part, "baseline")})
    return summary


def _tuned(tuning: Optional[dict]) -> str:
    """How alpha was chosen, for the table's text."""
    if not tuning:
        return ""
    tried = ", ".join(f"{t['alpha']:g}: {t['valid_accuracy']:.2%}" for t in tuning["tried"])
    return (f"Alpha was chosen before the table by the validation accuracy of M2 runs with "
            f"{tuning['labels_per_class']} labels per class drawn with seed {tuning['seed']} (not a table seed; "
            f"validation rows' labels used for that choice only, the test rows for none): {tried}; chosen "
            f"{tuning['chosen']:g}. ")


def _spread(part: List[dict], key: str) -> float:
    """The standard deviation of ``key`` over the seeds (0 for one seed)."""
    return statistics.stdev([r[key] for r in part]) if len(part) > 1 else 0.0


def _markdown(r: dict) -> str:
    s = r["settings"]
    stack = r.get("stack")
    stacked = "" if not stack else (
        f"M1+M2 (Kingma et al. 2014): per seed, a VAE (M1: MLP hidden {stack['hidden']}, z {stack['z_dim']}, "
        f"analytic KL, {stack['epochs']} epochs, best.pt by its validation ELBO) is trained first on the training "
        "rows without labels; M2 and the baseline take its posterior means as their rows (a Gaussian likelihood "
        "on standardized columns). ")
    lines = [f"# Semi-supervised classification: {'M1+' if stack else ''}M2 against its classifier trained on the "
             f"labels alone ({r['dataset']})",
             "", f"Test accuracy over all {r['rows'][0]['num_test']:,} test rows, mean ± standard deviation over "
             f"{r['summary'][0]['seeds']} seeds (each seed draws its own labelled rows and trains with its own "
             f"random stream). {stacked}{_tuned(r.get('tuning'))}M2: `--model {'m1m2' if stack else 'm2'}`, MLP hidden "
             f"{s['hidden']}, z {s['z_dim']}, alpha {s['alpha']:g} per labelled row, labelled rows in every minibatch "
             f"({s['labelled_batch'] or 'all of them, up to --batch-size'}), {s['epochs']} epochs, best.pt chosen by "
             f"the validation ELBO (no labels). Baseline: the same network as M2's q(y|x), Adam 1e-3 on the "
             f"cross-entropy of the same labelled rows alone (the same inputs), {r['baseline_steps']} full-batch steps, "
             "the last scored.", "",
             "| labels per class | labelled rows | M2 | supervised baseline | M2 - baseline |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for row in r["summary"]:
        n_rows = next(x["labelled_rows"] for x in r["rows"] if x["labels_per_class"] == row["labels_per_class"])
        lines.append(f"| {row['labels_per_class']} | {n_rows:,} | {row['m2_mean']:.2%} ± {row['m2_sd']:.2%} | "
                     f"{row['baseline_mean']:.2%} ± {row['baseline_sd']:.2%} | "
                     f"{row['m2_mean'] - row['baseline_mean']:+.2%} |")
    lines += ["", "Per run:", "", "| labels per class | seed | M2 | baseline | M2's best epoch / epochs |",
              "| ---: | ---: | ---: | ---: | ---: |"]
    for row in r["rows"]:
        lines.append(f"| {row['labels_per_class']} | {row['seed']} | {row['m2']:.2%} | {row['baseline']:.2%} | "
                     f"{row['m2_best_epoch']} / {row['epochs']} |")
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def test_accuracy_of(run_dir, dataset=None) -> float:
    """The test accuracy of ``best.pt`` of an M2 (or M1+M2) run over all its test rows, as its
    classifier sees them (:func:`run_rows`; ``dataset``: the run's data, where they were given in Python)."""
    _, model, data = run_rows(run_dir, dataset)
    return accuracy(model, data.test_x, data.test_y)


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/ssl_table.py``: M2 against its classifier trained on the labels alone, several label
    counts and seeds."""
    p = build_parser("Train M2 (--model m2) with N labels per class for several N and seeds, train the same "
                     "classifier on the labelled rows alone beside each, and write <out>/table.{md,json}; finished "
                     "runs are kept, interrupted ones resumed.")
    p.set_defaults(model="m2", out="runs/ssl", progress=False)
    p.add_argument("--labels", type=int, nargs="+", default=[10, 100], metavar="N",
                   help="labels per class, one table row each")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                   help="seeds: each draws its own labelled rows (--label-seed) and trains with its own --seed")
    p.add_argument("--baseline-steps", type=int, default=1000,
                   help="full-batch Adam steps of the supervised baseline on the labelled rows")
    p.add_argument("--alphas", type=float, nargs="+", default=None, metavar="A",
                   help="choose --alpha first among these, by the validation accuracy of runs with a seed of their "
                        "own (100) and the first --labels count")
    p.add_argument("--stack", action="store_true",
                   help="M1+M2: per seed, train a VAE (M1) on the training rows without labels first; M2 and the "
                        "baseline take its posterior means as rows")
    p.add_argument("--m1-epochs", type=int, default=40, help="--stack: M1's epochs")
    p.add_argument("--m1-z-dim", type=int, default=32, help="--stack: M1's latent dimensions (M2's input columns)")
    p.add_argument("--m1-hidden", type=int, nargs="+", default=[256], help="--stack: M1's hidden widths")
    args = vars(p.parse_args(argv))
    study = {k: args.pop(k) for k in ("labels", "seeds", "baseline_steps", "alphas")}
    m1 = {k: args.pop(f"m1_{k}") for k in ("epochs", "z_dim", "hidden")}
    stack = m1 if args.pop("stack") else None
    if min([m1["epochs"], m1["z_dim"], *m1["hidden"]]) <= 0:
        p.error("--m1-epochs, --m1-z-dim and --m1-hidden must be positive")
    out = args.pop("out")
    if args["model"] != "m2":
        p.error("the table compares M2; leave --model at m2")
    if min(study["labels"]) <= 0 or study["baseline_steps"] <= 0 or min(study["seeds"]) < 0:
        p.error("--labels and --baseline-steps must be positive and --seeds non-negative")
    if study["alphas"] and min(study["alphas"]) < 0:
        p.error("--alphas must be non-negative")
    given = _flags_given(p, argv)
    for name in ("labels_per_class", "seed", "label_seed", "resume"):
        if name in given:
            p.error(f"--{name.replace('_', '-')} is set per table row; use --labels and --seeds")
    config = _train_config(p, args)
    return _guarded(lambda: ssl_table(config, out, study["labels"], study["seeds"], study["baseline_steps"],
                                      command=_command("scripts/ssl_table.py", argv), stack=stack,
                                      alphas=study["alphas"] or ()), out)

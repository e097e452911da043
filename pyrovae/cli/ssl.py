"""``scripts/ssl_table.py``: M2 against its classifier trained on the labels alone, several label
counts and seeds (:mod:`pyrovae.experiments.semisupervised`)."""
from typing import List, Optional

from .common import _command, _guarded
from .svi_train import _flags_given, _train_config, build_parser


def ssl_main(argv: Optional[List[str]] = None) -> int:
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
    from ..experiments.semisupervised import ssl_table  # the application loads only when its command runs
    return _guarded(lambda: ssl_table(config, out, study["labels"], study["seeds"], study["baseline_steps"],
                                      command=_command("scripts/ssl_table.py", argv), stack=stack,
                                      alphas=study["alphas"] or ()), out)

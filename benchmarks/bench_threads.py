"""How OpenMP's idle threads wait, measured (``scripts/bench_threads.py``): the epoch of ``--fast``
at several threads under each wait policy, on a quiet machine and with other processes busy.

Every program of pyrovae starts with ``OMP_WAIT_POLICY=PASSIVE`` unless the environment sets it
(``scripts/_startup.py``): a thread that has finished its share of a parallel region sleeps
until the next one. The alternatives spin: libgomp's default spins a while and then sleeps,
``OMP_WAIT_POLICY=ACTIVE`` spins until there is work. A sleeping thread costs a wake-up at the
start of every parallel region (a step of the MLP VAE runs dozens: its matrix products and
inductor's fused kernels), a spinning one holds a core that another process may need. The
policy is read once, when the OpenMP runtime loads, so each setting trains in a process of its
own (:func:`worker`): the 784-400-50 MLP VAE of ``scripts/bench_peers.py`` (Bernoulli logits,
Adam lr 1e-3, batch 256) with ``--fast``, one warm-up epoch (the compilation), then
``--epochs`` timed epochs, wall and process CPU seconds each.

**Protocol.** ``--rounds`` rounds; in each, for each condition (``quiet``: nothing else of the
benchmark runs; ``busy``: ``--busy`` processes that spin in pure Python run beside it, started
before and stopped after the condition's workers), every setting runs one worker, in an order
rotated by one each round. A setting's ratio to the first (pyrovae's default) is its median
epoch over the first's median epoch in the same round and condition; the report gives the
medians over rounds with their spread. A worker that has not finished in ``--timeout`` seconds
is stopped, and its row says so."""
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional

from pyrovae.cli.common import _command, _guarded, _Help, _Parser
from pyrovae.environment import versions
from pyrovae.errors import DataError
from pyrovae.training.files import write_report

from .bench_peers_report import _stat, _x
from .host import ENVIRONMENT, cpu_slug, describe, machine

#: name -> (what the report calls it, the environment's OpenMP settings; None: removed)
SETTINGS: Dict[str, tuple] = {
    "passive": ("sleep (`OMP_WAIT_POLICY=PASSIVE`, pyrovae's default)", {"OMP_WAIT_POLICY": "PASSIVE"}),
    "default": ("spin, then sleep (libgomp's default)", {"OMP_WAIT_POLICY": None}),
    "active": ("spin (`OMP_WAIT_POLICY=ACTIVE`)", {"OMP_WAIT_POLICY": "ACTIVE"}),
}
_ROOT = Path(__file__).resolve().parent.parent  # the clone: its benchmarks and pyrovae are what the workers import
_BUSY = "while True:\n    pass\n"


def worker(argv: List[str]) -> int:
    """One setting's process: train the VAE with ``--fast`` (one warm-up epoch, then the timed
    ones) and print ``{"epochs": [[wall s, CPU s], ...], "mode", "fast_step", "environment"}``."""
    import torch

    from pyrovae.data.datasets import load_dataset
    from pyrovae.infer.compiled import CompiledSVIStep
    from pyrovae.infer.elbos import make_elbo
    from pyrovae.infer.svi import EpochState, make_optimizer, run_epoch
    from pyrovae.model.vae import VAE

    from .bench_peers import binary_rows, epoch_order

    a = json.loads(argv[0])
    torch.set_num_threads(a["threads"])
    x = binary_rows(load_dataset(a["dataset"], a["data_dir"], download=False, log=lambda line: None).train_x)
    steps = min(len(x) // a["batch_size"], a["max_steps"] or len(x))
    torch.manual_seed(0)
    vae = VAE(x.shape[1], a["z_dim"], tuple(a["hidden"]))
    step = CompiledSVIStep(vae, make_elbo("trace"), make_optimizer(vae.parameters(), 1e-3))
    epochs = []
    for e in range(a["epochs"] + 1):  # epoch 0: the warm-up
        state = EpochState(epoch_order(len(x), e, steps, a["batch_size"]), 0, torch.zeros(()), torch.full((), -1, dtype=torch.long))
        wall, cpu = time.perf_counter(), time.process_time()
        run_epoch(step, x, state, a["batch_size"])
        epochs.append([time.perf_counter() - wall, time.process_time() - cpu])
    print(json.dumps({"epochs": epochs[1:], "mode": step.mode, "fast_step": step.fast_step,
                      "environment": {k: os.environ[k] for k in ENVIRONMENT if k in os.environ}}))
    return 0


def _environment(setting: str) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    for key, value in SETTINGS[setting][1].items():
        env.pop(key, None)
        if value is not None:
            env[key] = value
    return env


def run_worker(setting: str, request: dict, timeout: float) -> dict:
    """One worker under ``setting``'s environment: its record, or ``{"error": why}``."""
    code = "import sys; from benchmarks.bench_threads import worker; sys.exit(worker(sys.argv[1:]))"
    try:
        done = subprocess.run([sys.executable, "-c", code, json.dumps(request)], env=_environment(setting),
                              cwd=_ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"not finished in {timeout:g} s"}
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or [f"exit status {done.returncode}"])[-1][:300]}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return {"error": "the worker printed no record"}


def busy(n: int) -> List[subprocess.Popen]:
    """``n`` processes that spin in pure Python until stopped (:func:`stop`)."""
    return [subprocess.Popen([sys.executable, "-c", _BUSY], stdin=subprocess.DEVNULL) for _ in range(n)]


def stop(processes: List[subprocess.Popen]) -> None:
    for p in processes:
        p.kill()
    for p in processes:
        p.wait()


def summarize(r: dict) -> dict:
    """Per condition, per setting: epoch wall and CPU seconds (every timed epoch of every round),
    threads used (CPU s / wall s), and the ratio to the first setting (medians within each round)."""
    base = r["protocol"]["settings"][0]
    out = {}
    for condition in r["protocol"]["conditions"]:
        rows = {}
        for setting in r["protocol"]["settings"]:
            runs = [x[condition][setting] for x in r["rounds"]]
            ok = [w for w in runs if "epochs" in w]
            walls = [e[0] for w in ok for e in w["epochs"]]
            cpus = [e[1] for w in ok for e in w["epochs"]]
            ratios = [statistics.median(e[0] for e in x[condition][setting]["epochs"])
                      / statistics.median(e[0] for e in x[condition][base]["epochs"])
                      for x in r["rounds"] if "epochs" in x[condition][setting] and "epochs" in x[condition][base]]
            rows[setting] = {"epoch_s": _stat(walls), "epoch_cpu_s": _stat(cpus),
                             "threads_used": _stat([c / w for w, c in zip(walls, cpus) if w > 0]),
                             "ratio": _stat(ratios), "failed": [w["error"] for w in runs if "error" in w],
                             "modes": sorted({w.get("mode", "compiled") for w in ok})}
        out[condition] = rows
    return out


def markdown(r: dict) -> str:
    p, m = r["protocol"], r["machine"]
    names = {s: SETTINGS[s][0] for s in p["settings"]}
    lines = [f"# OpenMP's wait policy and the `--fast` epoch on {m['cpu']}", "",
             f"Ran on: {describe(m, r['versions'], str(p['threads']))}. {p['dataset']}; 784-"
             f"{'-'.join(map(str, p['hidden']))}-{p['z_dim']} MLP VAE, `--fast` (Trace_ELBO), batch {p['batch_size']}, "
             f"{p['steps']} minibatches an epoch; each setting in a process of its own: one warm-up epoch, then "
             f"{p['epochs']} timed; {p['rounds']} round{'s' * (p['rounds'] > 1)}, the settings in an order rotated by one "
             "each round. Conditions: `quiet` (nothing else of the benchmark runs), `busy` "
             f"({p['busy']} process{'es' * (p['busy'] != 1)} spinning in pure Python beside the worker). Epoch seconds: "
             "median (min-max) over every timed epoch; the ratio to the first setting is taken within each round. "
             f"Load average {r['load_average_start'][0]:.1f} at the start, {r['load_average_end'][0]:.1f} at the end "
             "(the machine is shared).", ""]
    for condition, rows in r["summary"].items():
        lines += [f"## {condition}", "", "| wait policy | s / epoch | CPU s / epoch | threads used | ratio to the first |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for setting, s in rows.items():
            failed = f" ({len(s['failed'])} failed: {s['failed'][0]})" if s["failed"] else ""
            failed += "" if s["modes"] in ([], ["compiled"]) else f" (the step ran {' and '.join(s['modes'])})"
            lines.append(f"| {names[setting]}{failed} | {_x(s['epoch_s'], 2, '')} | {_x(s['epoch_cpu_s'], 2, '')} | "
                         f"{_x(s['threads_used'], 2, '')} | {_x(s['ratio'])} |")
        lines.append("")
    lines += [f"Command: `{r['command']}`", ""]
    return "\n".join(lines)


def run_threads(args, command: str, log=print) -> dict:
    from pyrovae.data.datasets import load_dataset  # the rows are checked here, once, before any worker starts

    rows = len(load_dataset(args.dataset, args.data_dir, download=False, log=log).train_x)
    steps = min(rows // args.batch_size, args.max_steps or rows)
    if steps < 1:
        raise DataError(f"{rows} rows make no minibatch of {args.batch_size}; lower --batch-size")
    conditions = ["quiet"] + (["busy"] if args.busy else [])
    dataset = str(Path(args.dataset).resolve()) if Path(args.dataset).exists() else args.dataset  # workers: another cwd
    request = {"dataset": dataset, "data_dir": str(Path(args.data_dir).resolve()), "batch_size": args.batch_size,
               "hidden": args.hidden, "z_dim": args.z_dim, "threads": args.threads, "epochs": args.epochs,
               "max_steps": args.max_steps}
    result = {"command": command, "machine": machine(ENVIRONMENT), "versions": versions(),
              "protocol": {"dataset": args.dataset, "batch_size": args.batch_size, "hidden": args.hidden,
                           "z_dim": args.z_dim, "threads": args.threads, "epochs": args.epochs, "steps": steps,
                           "rounds": args.rounds, "settings": args.settings, "conditions": conditions,
                           "busy": args.busy},
              "load_average_start": os.getloadavg(), "rounds": []}
    for r in range(args.rounds):
        record = {}
        for condition in conditions:
            others = busy(args.busy if condition == "busy" else 0)
            try:
                turn = args.settings[r % len(args.settings):] + args.settings[:r % len(args.settings)]
                record[condition] = {s: run_worker(s, request, args.timeout) for s in turn}
            finally:
                stop(others)
            log(f"round {r + 1}/{args.rounds}, {condition}: " + ", ".join(
                f"{s} {statistics.median(e[0] for e in w['epochs']):.2f} s" if "epochs" in w else f"{s} {w['error']}"
                for s, w in record[condition].items()))
        result["rounds"].append(record)
    result["load_average_end"] = os.getloadavg()
    result["summary"] = summarize(result)
    log(write_report(args.out, f"threads-{cpu_slug(result['machine']['cpu'])}", result, markdown(result)).read_text())
    return result


def main(argv: Optional[List[str]] = None) -> int:
    """``scripts/bench_threads.py``: the ``--fast`` epoch under each OpenMP wait policy, quiet and beside busy processes."""
    p = _Parser(description="Time the --fast epoch of the MLP VAE under each OpenMP wait policy (each in a process "
                "of its own), on a quiet machine and beside processes that keep cores busy, in rounds. Writes "
                "<out>/threads-<cpu>.{md,json}, <cpu> the CPU model.", formatter_class=_Help)
    p.add_argument("--dataset", default="binarized-mnist",
                   help="the rows to train on: a data set name or a file (grey levels are binarized once)")
    p.add_argument("--data-dir", default="./data", help="where the data set is read from")
    p.add_argument("--batch-size", type=int, default=256, help="images per minibatch")
    p.add_argument("--hidden", type=int, nargs="+", default=[400], help="hidden widths of the MLPs")
    p.add_argument("--z-dim", type=int, default=50, help="latent dimensions")
    p.add_argument("--threads", type=int, default=2, help="torch threads of every worker")
    p.add_argument("--settings", nargs="+", choices=list(SETTINGS), default=list(SETTINGS),
                   help="wait policies to time; ratios are to the first")
    p.add_argument("--busy", type=int, default=1, help="processes kept busy beside the workers in the busy "
                   "condition (0: time the quiet condition only)")
    p.add_argument("--epochs", type=int, default=3, help="timed epochs of each worker, after its warm-up epoch")
    p.add_argument("--rounds", type=int, default=3, help="rounds; each runs every setting in every condition once")
    p.add_argument("--max-steps", type=int, default=None, help="at most this many minibatches per epoch")
    p.add_argument("--timeout", type=float, default=600, help="seconds a worker may take before it is stopped")
    p.add_argument("--out", default="runs/bench", help="folder of threads-<cpu>.{md,json} (<cpu>: the CPU model)")
    args = p.parse_args(argv)
    sizes = args.hidden + [args.batch_size, args.z_dim, args.threads, args.epochs, args.rounds, args.timeout]
    if min(sizes + ([] if args.max_steps is None else [args.max_steps])) <= 0 or args.busy < 0:
        p.error("sizes, --threads, --epochs, --rounds, --timeout and --max-steps must be positive, --busy 0 or more")
    if len(set(args.settings)) != len(args.settings):
        p.error("--settings names a wait policy twice; name each once")
    return _guarded(lambda: run_threads(args, command=_command("scripts/bench_threads.py", argv)), args.out)

"""The report of ``scripts/bench_peers.py``: the rows' names, the summary of the rounds
(medians, spreads, within-round ratios, the threads each row used, the goals) and
``peers-<cpu>.md``."""
import statistics
from typing import Dict, List, Optional

from .host import describe

REFERENCE = "PyTorch by hand (eager, torch.optim.Adam)"
STOCK = "stock Pyro SVI (Trace_ELBO, pyro.optim.Adam)"
TRACE, MEANFIELD = "pyrovae Trace_ELBO (eager)", "pyrovae TraceMeanField_ELBO (eager)"
MEANFIELD_BEFORE = "before: pyrovae TraceMeanField_ELBO, every site scored"
FAST, FAST_BEFORE = "pyrovae --fast (Trace_ELBO)", "before: pyrovae --fast with torch.mm"
#: ``--fast`` with its products on oneDNN whatever it would choose: beside FAST_BEFORE (``torch.mm``), the
#: epoch-long check of the choice ``--fast`` makes from its short timing of the products
FAST_ONEDNN = "pyrovae --fast with oneDNN"
FAST_HOST_BEFORE = "before: pyrovae --fast with TorchDynamo's guards and Optimizer.step"
FAST_ORIGINAL = "before: pyrovae --fast as it was (torch.mm, TorchDynamo's guards, Optimizer.step)"
NUMPYRO = "NumPyro (stax, jit-ted epoch)"
FLOOR_MM, FLOOR_ONEDNN = "matmul floor: torch.mm", "matmul floor: oneDNN"
FLOORS = (FLOOR_MM, FLOOR_ONEDNN)
#: ``--fast`` at most this many times the machine's floor (the faster of the two)
FLOOR_GOAL = 1.3
#: rows whose threads used (CPU s / wall s) differ by more than this factor, one of them above one
#: (more than one thread at once), do not use the same threads; below one a row only waited for a core
THREAD_USE_SPREAD = 1.25
#: (before, after, what changed): speed changes measured as rows of the same rounds
CHANGES = [(FAST_ORIGINAL, FAST, "`--fast`: all the changes below together"),
           (FAST_BEFORE, FAST, "`--fast`: the graph's matrix products on the GEMM it timed faster here (oneDNN or "
                               "`torch.mm`) instead of `torch.mm` always"),
           (FAST_HOST_BEFORE, FAST, "`--fast`: the graph called without TorchDynamo's guards, Adam through its "
                                    "functional form"),
           (MEANFIELD_BEFORE, MEANFIELD, "eager `TraceMeanField_ELBO`: only the log-densities the loss reads")]


def _ok(entry) -> bool:
    return isinstance(entry, dict) and "wall_s" in entry


def _ratios(rounds: List[dict], kind: str, t, name: str, against: str, key: str = "wall_s") -> List[float]:
    """``name``'s time over ``against``'s, round by round (rounds missing either skipped)."""
    out = []
    for r in rounds:
        a, b = r[kind][t].get(name), r[kind][t].get(against)
        if _ok(a) and _ok(b) and b[key] > 0:
            out.append(a[key] / b[key])
    return out


def _stat(values: List[float]) -> Optional[dict]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)} if values else None


def summarize(r: dict) -> dict:
    """Per thread count: per row, epoch seconds (wall, CPU), the threads used (CPU s / wall s
    of each epoch), ms per step, and the within-round ratios to the reference, to the floors
    and between the goal rows; the machine's ``floor`` (the floor row of the lower median
    epoch); whether the rows' thread use differs; the goals (:func:`targets`)."""
    rounds, p = r["rounds"], r["protocol"]
    out = {}
    for t in p["threads"]:
        names = list(r["warmup"].get(t, {}))
        rows = {}
        for name in names:
            epochs = [x["epochs"][t][name] for x in rounds if _ok(x["epochs"][t].get(name))]
            blocks = [x["steps"][t][name] for x in rounds if _ok(x["steps"][t].get(name))]
            last = epochs[-1].get("loss_sum") if epochs else None
            rows[name] = {
                "epoch_s": _stat([e["wall_s"] for e in epochs]), "epoch_cpu_s": _stat([e["cpu_s"] for e in epochs]),
                "threads_used": _stat([e["cpu_s"] / e["wall_s"] for e in epochs if e["wall_s"] > 0]),
                "ms_per_step": _stat([b["wall_s"] / b["steps"] * 1e3 for b in blocks]),
                "cpu_ms_per_step": _stat([b["cpu_s"] / b["steps"] * 1e3 for b in blocks]),
                "ratio": _stat(_ratios(rounds, "epochs", t, name, REFERENCE)),
                "cpu_ratio": _stat(_ratios(rounds, "epochs", t, name, REFERENCE, "cpu_s")),
                "step_ratio": _stat(_ratios(rounds, "steps", t, name, REFERENCE)),
                "x_floor": {f: _stat(_ratios(rounds, "epochs", t, name, f)) for f in FLOORS},
                "cpu_x_floor": {f: _stat(_ratios(rounds, "epochs", t, name, f, "cpu_s")) for f in FLOORS},
                "loss_per_image": None if last is None else last / p["images_per_epoch"]}
        goals = {"fast_over_numpyro": _stat(_ratios(rounds, "epochs", t, FAST, NUMPYRO)),
                 "fast_over_numpyro_cpu": _stat(_ratios(rounds, "epochs", t, FAST, NUMPYRO, "cpu_s")),
                 "meanfield_over_trace": _stat(_ratios(rounds, "epochs", t, MEANFIELD, TRACE)),
                 "meanfield_over_trace_cpu": _stat(_ratios(rounds, "epochs", t, MEANFIELD, TRACE, "cpu_s")),
                 "changes": {before: {"after": after,  # keyed by the "before" row: several changes share an after
                                      "epoch": _stat(_ratios(rounds, "epochs", t, after, before)),
                                      "cpu": _stat(_ratios(rounds, "epochs", t, after, before, "cpu_s")),
                                      "step": _stat(_ratios(rounds, "steps", t, after, before))}
                             for before, after, _ in CHANGES}}
        goals["choice"] = choice_check((r["warmup"].get(t, {}).get(FAST) or {}).get("fast_step"),
                                       _stat(_ratios(rounds, "epochs", t, FAST_ONEDNN, FAST_BEFORE)))
        floors = [f for f in FLOORS if (rows.get(f) or {}).get("epoch_s")]
        floor = min(floors, key=lambda f: rows[f]["epoch_s"]["median"]) if floors else None
        used = {name: s["threads_used"]["median"] for name, s in rows.items() if s["threads_used"]}
        most, least = (max(used, key=used.get), min(used, key=used.get)) if used else (None, None)
        differs = bool(used) and used[least] > 0 and used[most] > 1.0 and used[most] / used[least] > THREAD_USE_SPREAD
        out[t] = {"rows": rows, "floor": floor, "goals": goals,
                  "thread_use_differs": {"most": [most, used[most]], "least": [least, used[least]]} if differs else None}
        goals["targets"] = targets(out[t], int(t))
    return out


def choice_check(fast_step: Optional[dict], onednn_over_mm: Optional[dict]) -> Optional[dict]:
    """What ``--fast`` chose for its products (its record, ``fast_step``) against the epoch-long
    timing of ``--fast`` with each backend forced (``onednn_over_mm``: oneDNN's epoch over
    ``torch.mm``'s, round by round): ``agrees`` True or False where every round favours one
    backend, None where the rounds do not all favour the same one."""
    if not fast_step or not onednn_over_mm:
        return None
    if onednn_over_mm["max"] < 1.0:
        faster = "onednn"
    elif onednn_over_mm["min"] > 1.0:
        faster = "mm"
    else:
        faster = None
    return {"chose": fast_step.get("matmul"), "chosen_by": fast_step.get("chosen_by"), "ms": fast_step.get("ms"),
            "onednn_over_mm": onednn_over_mm, "faster": faster,
            "agrees": None if faster is None else faster == fast_step.get("matmul")}


def _choice_line(c: Optional[dict]) -> List[str]:
    if not c:
        return []
    names = {"onednn": "oneDNN", "mm": "`torch.mm`"}
    timed = ", ".join(f"{names.get(n, n)} {ms:.3g} ms" for n, ms in sorted((c["ms"] or {}).items(), key=lambda i: i[1]))
    verdict = ("the rounds do not all favour one backend" if c["agrees"] is None
               else f"every round favours {names[c['faster']]}: the choice "
               + ("agrees with the epoch-long timing" if c["agrees"] else "**disagrees** with the epoch-long timing"))
    return [f"- `--fast`'s GEMM: it chose {names.get(c['chose'], c['chose'])} ({c['chosen_by']}"
            + (f"; {timed} for the step's products" if timed else "") + "); `--fast` forced to each, oneDNN / "
            f"`torch.mm` per epoch: {_x(c['onednn_over_mm'])}; {verdict}."]


def targets(s: dict, threads: int) -> List[dict]:
    """The speed goals at ``threads``, each ``{"goal", "measure", "ratio", "limit", "met"}``
    (``met`` None where a row is missing): ``--fast`` at most NumPyro's epoch, in CPU seconds at
    one thread and in wall seconds at more; ``--fast`` at most :data:`FLOOR_GOAL` times the floor."""
    g, rows = s["goals"], s["rows"]
    cpu = threads == 1
    out = [{"goal": "`--fast` <= NumPyro per epoch", "measure": "CPU seconds" if cpu else "wall seconds",
            "ratio": g["fast_over_numpyro_cpu" if cpu else "fast_over_numpyro"], "limit": 1.0}]
    floor = s["floor"]
    out.append({"goal": f"`--fast` <= {FLOOR_GOAL}x the matmul floor"
                        + (f" ({floor.split(': ')[-1]})" if floor else ""), "measure": "wall seconds",
                "ratio": (rows.get(FAST) or {}).get("x_floor", {}).get(floor), "limit": FLOOR_GOAL})
    for goal in out:
        goal["met"] = None if not goal["ratio"] else goal["ratio"]["median"] <= goal["limit"]
    return out


def _x(s: Optional[dict], digits: int = 2, suffix: str = "x") -> str:
    if not s:
        return "-"
    return f"{s['median']:.{digits}f}{suffix} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def _v(s: Optional[dict], digits: int = 2) -> str:
    return "-" if not s else f"{s['median']:.{digits}f}"


def _table(rows: Dict[str, dict], floor: Optional[str]) -> List[str]:
    short = floor.split(": ")[-1] if floor else "none"
    lines = ["| system | s / epoch | CPU s / epoch | threads used (CPU s / s) | ratio to PyTorch by hand | CPU ratio | "
             f"x floor ({short}) | CPU x floor | ms / step | step ratio | -ELBO / image |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for name, s in rows.items():
        loss = "-" if s["loss_per_image"] is None else f"{s['loss_per_image']:.1f}"
        bold = "**" if name in (FAST, NUMPYRO) else ""
        lines.append(f"| {bold}{name}{bold} | {_x(s['epoch_s'], 2, '')} | {_v(s['epoch_cpu_s'])} | "
                     f"{_v(s['threads_used'])} | {_x(s['ratio'])} | {_v(s['cpu_ratio'])}x | "
                     f"{_v(s['x_floor'].get(floor))}x | {_v(s['cpu_x_floor'].get(floor))}x | "
                     f"{_v(s['ms_per_step'])} | {_v(s['step_ratio'])}x | {loss} |")
    return lines


def markdown(r: dict) -> str:
    """``peers-<cpu>.md``: where it ran, the protocol, the floor's arithmetic, one table per thread
    count with the goals met or not, and the changes."""
    p, v, m, f = r["protocol"], r["versions"], r["machine"], r["flops"]
    np_status = r["numpyro"]
    numpyro = "" if np_status["ran"] else f"; NumPyro row skipped: {np_status['reason']}"
    hidden = "-".join(map(str, p["hidden"]))
    core = p.get("one_thread_core")
    held = ("every 1-thread row held to core " f"{core} (the PyTorch rows' thread while they run, NumPyro's process "
            "from its start)" if core is not None else "no row held to a core")
    lines = [f"# pyrovae against its peers on {m['cpu']}", "",
             f"Ran on: {describe(m, v, ' and '.join(map(str, p['threads'])))}{numpyro}. {p['dataset']}, "
             f"{p['rows']:,} rows; 784-{hidden}-{p['z_dim']} MLP VAE, Bernoulli logits, {p['optimizer']}; batch "
             f"{p['batch_size']}, {p['steps_per_epoch']} minibatches ({p['images_per_epoch']:,} images) per epoch, "
             "the same order for every system. One warm-up epoch per system, then "
             f"{p['rounds']} round{'s' * (p['rounds'] > 1)}; in each round every system trains one epoch and one block of "
             f"{p['steps_per_block']} steps, in an order rotated by one each round. Medians over rounds "
             "(min-max); ratios are taken within each round. CPU seconds are the process's (all its threads). "
             f"Load average {r['load_average_start'][0]:.1f} at the start, {r['load_average_end'][0]:.1f} at the end "
             "(the machine is shared). Environment: "
             + (", ".join(f"`{k}={val}`" for k, val in m.get("environment", {}).items()) or "no OpenMP or XLA settings")
             + (f"; NumPyro's XLA_FLAGS per thread count: {np_status.get('xla_flags')}, its cores "
                f"{np_status.get('affinity')}, its OS threads {np_status.get('os_threads')}" if np_status["ran"] else "")
             + f". Threads: {held}; \"threads used\" is a row's CPU seconds over its wall seconds (below 1: it "
             "waited for a core). The floor is the faster of the two matmul floors on this machine, named in each "
             "table.", ""]
    for t, s in r["summary"].items():
        lines += [f"## {t} thread{'s' * (int(t) > 1)}", "", *_table(s["rows"], s.get("floor")), ""]
        g = s["goals"]
        for goal in g.get("targets", []):
            met = {True: "**met**", False: "**not met**", None: "not measured"}[goal["met"]]
            lines.append(f"- Goal {goal['goal']}, in {goal['measure']}: {met}, {_x(goal['ratio'])} "
                         f"(limit {goal['limit']:.1f}x).")
        if s.get("thread_use_differs"):
            (most, hi), (least, lo) = s["thread_use_differs"]["most"], s["thread_use_differs"]["least"]
            lines.append(f"- The rows' thread use differs, {lo:.2f} ({least}) to {hi:.2f} ({most}) threads used: "
                         "compare them in CPU seconds (the CPU columns).")
        fast_floor = s["rows"].get(FAST, {}).get("x_floor", {})
        lines += [f"- `--fast` / NumPyro per epoch: {_x(g['fast_over_numpyro'])} wall, "
                  f"{_x(g['fast_over_numpyro_cpu'])} CPU seconds (below 1: `--fast` is faster).",
                  f"- `--fast` x matmul floor: {_x(fast_floor.get(FLOOR_MM))} of `torch.mm`'s, "
                  f"{_x(fast_floor.get(FLOOR_ONEDNN))} of oneDNN's.",
                  f"- eager `TraceMeanField_ELBO` / eager `Trace_ELBO`: {_x(g['meanfield_over_trace'])} wall, "
                  f"{_x(g['meanfield_over_trace_cpu'])} CPU seconds.", *_choice_line(g.get("choice")), ""]
    lines += ["## Changes, before and after, measured as rows of the same rounds", "",
              "| change | threads | after / before, epoch (wall) | CPU | per step |", "| --- | ---: | ---: | ---: | ---: |"]
    for before, _, what in CHANGES:
        for t, s in r["summary"].items():
            c = s["goals"]["changes"][before]
            lines.append(f"| {what} | {t} | {_x(c['epoch'])} | {_x(c['cpu'])} | {_x(c['step'])} |")
    gather = r["gather_us"]
    lines += ["", f"`run_epoch` gathers each minibatch with `index_select`: {gather['index_select']:.0f} us per "
              f"minibatch of {p['batch_size']} rows against {gather['x[idx]']:.0f} us for `x[idx]`.", "",
              "## The matrix-product floor", "",
              f"A step multiplies, per linear layer (in -> out), the forward B x in x out, the weight gradient "
              f"out x B x in and the input gradient B x out x in, at 2mnk FLOPs each. Forward: F = sum 2 B in out = "
              f"{f['forward'] / 1e6:.1f} MFLOP; backward 2F = {f['backward_2x'] / 1e6:.1f} MFLOP, of which the first "
              f"layer's input gradient ({f['skipped_first_input_gradient'] / 1e6:.1f} MFLOP) is needed by nothing; "
              f"{f['products_per_step']} products, {f['step_needed'] / 1e6:.1f} MFLOP a step, "
              f"{f['step_needed'] * p['steps_per_epoch'] / 1e9:.1f} GFLOP an epoch. The floor rows time exactly these "
              "products on contiguous operands, an epoch's worth per round, with `torch.mm` and with oneDNN "
              "(`pyrovae::onednn_mm`):", ""]
    for t, s in r["summary"].items():
        for floor in FLOORS:
            e = s["rows"].get(floor, {}).get("epoch_s")
            if e:
                rate = f["step_needed"] * p["steps_per_epoch"] / e["median"] / 1e9
                lines.append(f"- {t} thread{'s' * (int(t) > 1)}, {floor}: {e['median']:.2f} s an epoch, {rate:.0f} GFLOP/s")
    lines += ["", f"Command: `{r['command']}`", ""]
    return "\n".join(lines)

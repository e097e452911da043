"""Killing training subprocesses at exact points, and comparing two runs bit for bit:
shared by the resume tests on the CPU and on the GPU."""
import json
import textwrap
from pathlib import Path

import torch

from pyrovae.training.checkpoint import read_checkpoint

#: ``python driver.py MODE AT ARGS...``: svi_train's main with SIGKILL/SIGINT/SIGTERM after
#: step AT, or SIGKILL halfway through writing the AT-th checkpoint file ("in-write")
DRIVER = textwrap.dedent("""
    import io, os, signal, sys
    import torch
    import pyrovae.training.trainer as run
    from pyrovae.cli import main

    mode, at = sys.argv[1], int(sys.argv[2])
    if mode in ("SIGKILL", "SIGINT", "SIGTERM"):  # the signal after step `at`
        original, count = run.run_epoch, [0]

        def run_epoch(*args, after_step=None, **kwargs):
            def hook(state):
                count[0] += 1
                if count[0] == at:
                    os.kill(os.getpid(), getattr(signal, mode))
                return after_step(state)
            return original(*args, after_step=hook, **kwargs)

        run.run_epoch = run_epoch
    elif mode == "in-write":  # SIGKILL halfway through writing the `at`-th checkpoint file
        real_save, count = torch.save, [0]

        def save(obj, f, *args, **kwargs):
            count[0] += 1
            if count[0] == at:
                buffer = io.BytesIO()
                real_save(obj, buffer, *args, **kwargs)
                f.write(buffer.getvalue()[: len(buffer.getvalue()) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *args, **kwargs)

        torch.save = save
    sys.exit(main(sys.argv[3:]))
""")


def assert_same_run(a: Path, b: Path):
    for name in ("checkpoint.pt", "best.pt"):
        sa, sb = read_checkpoint(a / name), read_checkpoint(b / name)
        assert sa["epoch"] == sb["epoch"]
        for key, value in sa["state_dict"].items():
            assert torch.equal(value, sb["state_dict"][key]), f"{name}: {key} differs"
    opt_a, opt_b = read_checkpoint(a / "checkpoint.pt")["optimizer"], read_checkpoint(b / "checkpoint.pt")["optimizer"]
    for index, state in opt_a["state"].items():
        for key, value in state.items():
            assert torch.equal(value, opt_b["state"][index][key]), f"Adam {key} of parameter {index} differs"
    assert opt_a["param_groups"] == opt_b["param_groups"]
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    strip = lambda history: [{k: v for k, v in h.items() if k != "seconds"} for h in history]  # noqa: E731
    assert strip(ma["history"]) == strip(mb["history"])
    assert (ma["test_elbo"], ma["best"], ma["stopped_early"]) == (mb["test_elbo"], mb["best"], mb["stopped_early"])

"""The parts of a run (pyrovae.training.parts, .signals): decisions, and the same decisions
after a state_dict -> load_state_dict round trip at any point."""
import json
import os
import random
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from pyrovae.training.parts import Counters, RandomState, RunRecord, Schedule, Selection, upgrade
from pyrovae.training.signals import StopSignals

VALID = [-10.0, -9.0, -9.5, -9.2, -8.5, -8.7, -8.6, -8.9, -9.0]  # best at epochs 2 and 5


def decisions(selection, values, first_epoch=1, warmup=0):
    out = []
    for epoch, value in enumerate(values, start=first_epoch):
        improved = selection.update(epoch, value, test_elbo=None, warming_up=epoch <= warmup)
        out.append((improved, selection.best["epoch"], selection.stale_epochs, selection.stopped_early))
        if selection.stopped_early:
            break
    return out


def test_selection_follows_the_validation_elbo():
    selection = Selection("valid_elbo", patience=3)
    found = decisions(selection, VALID)
    assert [d[0] for d in found] == [True, True, False, False, True, False, False, False]
    assert found[-1] == (False, 5, 3, True)  # three epochs without a gain after epoch 5: stop after epoch 8
    assert selection.best == {"epoch": 5, "test_elbo": None, "valid_elbo": -8.5}


def test_warm_up_epochs_count_no_patience():
    selection = Selection("valid_elbo", patience=2)
    found = decisions(selection, [-5.0, -6.0, -7.0, -8.0, -9.0], warmup=3)
    assert [d[2] for d in found] == [0, 0, 0, 1, 2] and found[-1][3]


def test_without_validation_the_last_epoch_is_best_and_nothing_stops():
    selection = Selection("last_epoch", patience=0)
    found = decisions(selection, [None] * 4)
    assert all(d[0] for d in found) and selection.best["epoch"] == 4 and not selection.stopped_early


@pytest.mark.parametrize("cut", range(len(VALID)))
def test_selection_round_trip_keeps_the_decisions(cut):
    whole = decisions(Selection("valid_elbo", patience=3), VALID)
    first = Selection("valid_elbo", patience=3)
    before = decisions(first, VALID[:cut])
    saved = json.loads(json.dumps(first.state_dict()))  # plain values
    second = Selection("valid_elbo", patience=3)
    second.load_state_dict(saved)
    after = [] if first.stopped_early else decisions(second, VALID[cut:], first_epoch=cut + 1)
    assert before + after == whole


def _rates(kind, values, state=None):
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    schedule = Schedule(optimizer, kind, epochs=len(VALID), lr_min=0.01, patience=1)
    if state is not None:
        optimizer.load_state_dict(state[0])
        schedule.load_state_dict(state[1])
    rates = []
    for value in values:
        optimizer.step()  # an epoch of (here empty) steps, then the schedule
        schedule.step(value)
        rates.append(schedule.lr)
    return rates, (optimizer.state_dict(), schedule.state_dict())


@pytest.mark.parametrize("kind", ["constant", "cosine", "plateau"])
def test_schedule_round_trip_keeps_the_rates(kind):
    whole, _ = _rates(kind, VALID)
    assert (len(set(whole)) == 1) == (kind == "constant")
    first, state = _rates(kind, VALID[:4])
    rest, _ = _rates(kind, VALID[4:], state)
    assert first + rest == whole


def test_plateau_schedule_waits_out_the_warm_up():
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.3)
    schedule = Schedule(optimizer, "plateau", patience=0)
    for value in (-1.0, -2.0, -3.0):
        schedule.step(value, warming_up=True)
    assert schedule.lr == 0.3


def test_counters_round_trip_keep_the_unfinished_epoch():
    torch.manual_seed(0)
    counters = Counters("cpu")
    state = counters.start_epoch(10)
    state.position, counters.global_step = 3, 3
    copy = Counters("cpu")
    copy.load_state_dict(counters.state_dict())
    assert (copy.epoch, copy.global_step, copy.where()) == (0, 3, "epoch 1, minibatch 3")
    assert torch.equal(copy.epoch_state.order, state.order)
    copy.end_epoch()
    assert copy.epoch_state is None and copy.where() == "the end of epoch 1"


def test_random_state_round_trip():
    rng = RandomState()
    saved = rng.state_dict()
    first = (torch.rand(3), np.random.rand(), random.random())
    rng.load_state_dict(saved)
    again = (torch.rand(3), np.random.rand(), random.random())
    assert torch.equal(first[0], again[0]) and first[1:] == again[1:]


def test_a_signal_is_noted_then_acted_on():
    with StopSignals() as stop:
        assert not stop.agreed(1)
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.signal == signal.SIGINT and stop.agreed(2)
    error = stop.interrupted(7, Path("runs/x"))
    assert error.exit_code == 130 and str(error).startswith("SIGINT: stopped after step 7 and saved runs/x/checkpoint.pt")
    assert stop.state_dict() == {}


def test_metrics_are_written_from_the_parts():
    record, selection = RunRecord(command="c", selection="valid_elbo"), Selection("valid_elbo", patience=1)
    record.add({"epoch": 1, "test_elbo": -3.0}, "eager")
    selection.update(1, -2.0, -3.0)
    metrics = record.metrics(selection)
    assert list(metrics) == ["command", "history", "test_elbo", "last_test_elbo", "selection", "best", "stopped_early",
                             "resumes", "svi_step"]
    assert metrics["best"]["epoch"] == 1 and "best" not in record.state_dict()
    record.add({"epoch": 2, "test_elbo": -2.5}, "compiled", {"matmul": "mm", "chosen_by": "cache"})
    assert list(record.metrics(selection))[-2:] == ["svi_step", "fast_step"]
    assert record.metrics(selection)["fast_step"] == {"matmul": "mm", "chosen_by": "cache"}


def test_old_checkpoints_get_the_parts_entries():
    old = {"loop": {"epoch": 2, "global_step": 24, "stale_epochs": 1, "epoch_seconds": 0.5, "epoch_state": None},
           "scheduler": None, "metrics": {"dataset": {}, "history": [], "best": {"epoch": 1}, "stopped_early": False}}
    new = upgrade(old)
    assert new["selection"] == {"best": {"epoch": 1}, "stopped_early": False, "stale_epochs": 1}
    assert new["schedule"] == {} and new["record"] == {"dataset": {}, "history": []}
    assert upgrade(new) is new

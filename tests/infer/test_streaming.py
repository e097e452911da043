"""Data kept in host memory (:class:`HostRows`) train and score exactly as data on the
device: the same rows reach the same steps in the same order (the GPU side, overlap and
host reads, is in tests/test_cuda.py)."""
import copy

import pytest
import torch

import pyrovae
from pyrovae.data.placement import DEVICE_FRACTION, HostRows, choose_placement, data_bytes, place_data
from pyrovae.data.prepare import PreparedData
from pyrovae.data.transforms import binarize
from pyrovae.errors import ConfigError
from pyrovae.infer.evaluation import active_units, elbo, log_likelihood
from pyrovae.infer.svi import EpochState, SVIStep, make_optimizer, run_epoch
from pyrovae.training.build import score


@pytest.fixture
def digits(mnist_sample):
    """330 real grey digits (330, 784): 10 minibatches of 32 and one of 10."""
    return mnist_sample.train_x[:330].clone()


def _recording_step(vae):
    """(an eager step that records its losses, the list it records into)."""
    step = SVIStep(vae, pyrovae.make_elbo("meanfield"), make_optimizer(vae.parameters(), 1e-3))
    losses = []

    def recording(batch, **kwargs):
        losses.append(step(batch, **kwargs))
        return losses[-1]

    return recording, losses


def _train(vae, x, transform=None):
    """One epoch of eager steps over ``x`` in the order drawn with seed 0: (losses, state)."""
    step, losses = _recording_step(vae)
    state = EpochState.start(len(x), "cpu", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    assert run_epoch(step, x, state, 32, transform)
    return losses, state


@pytest.mark.parametrize("transform", [None, binarize], ids=["binary", "binarize"])
def test_streamed_epoch_is_the_device_epoch_bit_for_bit(small_vae, digits, transform):
    x = digits if transform is not None else torch.bernoulli(digits, generator=torch.Generator().manual_seed(1))
    on_device, streamed = copy.deepcopy(small_vae), copy.deepcopy(small_vae)
    expected, state_a = _train(on_device, x, transform)
    got, state_b = _train(streamed, HostRows(x), transform)
    assert len(got) == len(expected) == 11
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    assert torch.equal(state_a.total, state_b.total) and int(state_b.first_bad) == -1
    for (name, a), b in zip(on_device.named_parameters(), streamed.parameters()):
        assert torch.equal(a, b), name
    assert not torch.equal(next(small_vae.parameters()), next(streamed.parameters()))  # it did train


def test_a_stopped_streamed_epoch_resumes_where_it_stopped(small_vae, digits):
    rows = HostRows(digits)
    whole, cut = copy.deepcopy(small_vae), copy.deepcopy(small_vae)
    expected, _ = _train(whole, rows, binarize)
    step, losses = _recording_step(cut)
    state = EpochState.start(len(digits), "cpu", torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    assert not run_epoch(step, rows, state, 32, binarize, after_step=lambda s: s.position == 4)
    resumed = EpochState.from_state_dict(copy.deepcopy(state.state_dict()), "cpu")  # what a checkpoint holds
    assert resumed.position == 4 and len(losses) == 4
    assert run_epoch(step, rows, resumed, 32, binarize) and resumed.position == 11
    assert len(losses) == 11 and all(torch.equal(a, b) for a, b in zip(expected, losses))
    for (name, a), b in zip(whole.named_parameters(), cut.parameters()):
        assert torch.equal(a, b), name


def test_batches_are_the_indexed_rows_in_reused_buffers():
    rows = HostRows(torch.arange(40.0).view(20, 2))  # row r holds 2r, 2r + 1
    order = torch.randperm(20, generator=torch.Generator().manual_seed(0))
    for slots in (2, 3):
        seen = [batch.clone() for batch in rows.batches(order.split(6), "cpu", slots=slots)]
        assert [len(b) for b in seen] == [6, 6, 6, 2]
        assert torch.equal(torch.cat(seen)[:, 0], 2 * order.float())
    with pytest.raises(ValueError, match="double buffering"):
        next(rows.batches(order.split(6), "cpu", slots=1))
    assert list(rows.batches([], "cpu")) == []
    assert torch.equal(rows[torch.tensor([3, 1])], torch.tensor([[6.0, 7.0], [2.0, 3.0]]))
    assert len(rows) == 20 and rows.shape == (20, 2) and rows.device.type == "cpu" and rows.nbytes == 160


def test_evaluation_of_host_rows_is_the_evaluation_of_the_tensor(small_vae, digits):
    x = torch.bernoulli(digits, generator=torch.Generator().manual_seed(2))
    rows = HostRows(x)
    results = []
    for data in (x, rows):
        torch.manual_seed(0)
        split = elbo(small_vae, data, num_particles=2, analytic_kl=False, batch_size=100)  # 4 chunks, the last of 30
        log_p = log_likelihood(small_vae, data, num_samples=20, batch_size=64, max_elements=64 * 784 * 7)
        results.append((split.elbo, split.kl, log_p, active_units(small_vae, data, batch_size=100)[1]))
    for a, b in zip(*results):
        assert torch.equal(a, b)
    with pytest.raises(pyrovae.DataError, match="no rows"):
        elbo(small_vae, HostRows(x[:0]))


def test_score_of_host_rows_is_the_score_of_the_tensors(small_vae, digits):
    binary = torch.bernoulli(digits, generator=torch.Generator().manual_seed(3))
    data = PreparedData(digits, binary[:200], "binarize", "dynamic", "none", valid_x=binary[200:])
    on_host = place_data(data, "cuda", "host", log=lambda line: None)  # no GPU needed to keep them on the host
    assert all(isinstance(t, HostRows) for t in (on_host.train_x, on_host.test_x, on_host.valid_x))
    scores = []
    for prepared in (data, on_host):
        torch.manual_seed(0)
        scores.append(score(small_vae, prepared, test=True, valid=True, main=True, world=1,
                            device=torch.device("cpu")))
    assert scores[0] == scores[1] and set(scores[0]) == {"valid_elbo", "test_elbo", "test_expected_log_likelihood",
                                                         "test_kl"}


def test_on_the_cpu_the_data_move_once_whatever_is_asked(digits):
    data = PreparedData(digits, digits[:50], "binarize", "dynamic", "none")
    said = []
    for placement in ("auto", "device", "host"):
        placed = place_data(data, "cpu", placement, log=said.append)
        assert isinstance(placed.train_x, torch.Tensor) and isinstance(placed.test_x, torch.Tensor)
        assert placed.valid_x is None and torch.equal(placed.train_x, digits)
    assert len(said) == 1 and "moot" in said[0]
    with pytest.raises(ConfigError, match="auto, device, host"):
        place_data(data, "cpu", "disk")
    assert data_bytes(data) == 4 * 784 * 380


def test_the_rule_keeps_half_the_free_memory():
    assert DEVICE_FRACTION == 0.5
    assert choose_placement(need=50, free=100) == "device"
    assert choose_placement(need=51, free=100) == "host"


def test_pinning_is_tried_only_where_cuda_is_available(monkeypatch, digits):
    tried = []

    def pin(self):
        tried.append(len(self))
        raise RuntimeError("no NVIDIA driver on this machine")

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rows = HostRows(digits)
    assert not tried and not rows.pinned and torch.equal(rows.rows, digits)
    said = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    rows = HostRows(digits, log=said.append)  # a pin that fails leaves the rows pageable, with one line
    assert tried == [330] and not rows.pinned and len(said) == 1 and "pageable" in said[0]
    assert "pageable" in repr(rows)
    with pytest.raises(pyrovae.DataError, match="flatten"):
        HostRows(torch.zeros(3, 2, 2))

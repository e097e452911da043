"""--fast computes what the eager step computes, its matrix products on oneDNN or on torch.mm:
the same loss for the same draws, the same parameters after several steps from the same seed,
the same test ELBO at the end of a short training; and it falls back to the eager step, with
one line, when capture fails."""
import copy

import pytest
import torch

import pyrovae
from pyrovae.infer.compiled import CompiledSVIStep
from pyrovae.infer.svi import SVIStep, make_optimizer


def pair(vae, kind, matmul="auto"):
    a, b = copy.deepcopy(vae), copy.deepcopy(vae)
    eager = SVIStep(a, pyrovae.make_elbo(kind), make_optimizer(a.parameters(), 1e-3))
    lines = []
    fast = CompiledSVIStep(b, pyrovae.make_elbo(kind), make_optimizer(b.parameters(), 1e-3), log=lines.append,
                           matmul=matmul)
    return a, b, eager, fast, lines


@pytest.mark.parametrize("kind, matmul", [("trace", "onednn"), ("trace", "mm"), ("meanfield", "auto")])
def test_same_losses_and_parameters_after_steps(kind, matmul, small_vae, binary_batch):
    a, b, eager, fast, lines = pair(small_vae, kind, matmul)
    shapes = [64, 32, 32, 32, 20, 32, 32, 32]  # 32 is captured; 64 validated, 20 eager
    for i, n in enumerate(shapes):
        batch = binary_batch[:n]
        torch.manual_seed(i)
        expected = eager(batch, validate=(i == 0))
        torch.manual_seed(i)
        got = fast(batch, validate=(i == 0))
        assert torch.allclose(got, expected, rtol=1e-5), (i, got, expected)
    assert fast.compiled and not lines
    assert fast.fast_step["matmul"] == matmul or matmul == "auto"
    assert (fast.onednn_matmuls == 11) == (fast.fast_step["matmul"] == "onednn")
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, rtol=1e-4, atol=1e-6), name
    assert not torch.equal(list(a.parameters())[0], list(small_vae.parameters())[0])  # they did train


def test_failed_capture_falls_back_to_eager(small_vae, binary_batch, monkeypatch):
    import pyrovae.infer.compiled as capture

    def broken(*args, **kwargs):
        raise RuntimeError("cannot trace this model")

    monkeypatch.setattr(capture, "make_fx", broken)
    a, b, eager, fast, lines = pair(small_vae, "trace")
    for i in range(3):
        torch.manual_seed(i)
        expected = eager(binary_batch)
        torch.manual_seed(i)
        assert torch.equal(fast(binary_batch), expected)
    assert not fast.compiled
    assert lines == ["--fast: the compiled step is not used, every step runs eagerly (cannot trace this model)"]


def test_fast_training_ends_at_the_same_test_elbo(mnist_sample, tmp_path):
    runs = {}
    for fast in (False, True):
        config = pyrovae.TrainConfig(epochs=2, train_limit=500, test_limit=200, z_dim=8, hidden=(64,), batch_size=64,
                                     fast=fast, progress=False, out=str(tmp_path / f"fast{fast}"))
        runs[fast] = pyrovae.train(config, log=lambda s: None, dataset=mnist_sample)
    assert runs[True]["svi_step"] == "compiled"
    assert runs[False]["svi_step"] == "eager" and "fast_step" not in runs[False]
    assert runs[True]["fast_step"]["chosen_by"] == "measured" and runs[True]["fast_step"]["matmul"] in ("onednn", "mm")
    for h_eager, h_fast in zip(runs[False]["history"], runs[True]["history"]):
        assert h_fast["train_elbo"] == pytest.approx(h_eager["train_elbo"], rel=1e-5)
        assert h_fast["test_elbo"] == pytest.approx(h_eager["test_elbo"], rel=1e-5)

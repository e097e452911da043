"""The benchmark compares like with like: the hand-written reference step computes the same
loss as pyrovae's TraceMeanField_ELBO step for the same random draws, and reaches the same
parameters after several steps; every configuration is timed."""
import copy

import pyro
import torch

import pyrovae
from benchmarks.bench import CONFIGS, pyrovae_step, reference_loss, reference_step, time_configs


def test_reference_loss_equals_pyro_analytic_kl_loss(small_vae, binary_batch):
    torch.manual_seed(3)
    ref = reference_loss(small_vae, binary_batch)
    torch.manual_seed(3)
    with pyro.validation_enabled(False):
        pyr = pyrovae.make_elbo("meanfield").differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
    assert torch.allclose(ref, pyr, rtol=1e-5), (ref, pyr)


def test_same_parameters_after_steps(small_vae, binary_batch):
    a, b = copy.deepcopy(small_vae), copy.deepcopy(small_vae)
    step_ref, step_pyro = reference_step(a), pyrovae_step(b, "meanfield", fast=False)
    for seed in range(5):
        torch.manual_seed(seed)
        step_ref(binary_batch)
        torch.manual_seed(seed)
        step_pyro(binary_batch)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa, pb, rtol=1e-4, atol=1e-6), name


def test_time_configs_reports_every_configuration(binary_batch):
    timings = time_configs(binary_batch, batch_size=16, hidden=(8,), z_dim=2, blocks=4, steps_per_block=1, warmup=2)
    assert list(timings) == list(CONFIGS)
    assert all(t["ms_per_step"] > 0 and t["blocks"] == 4 for t in timings.values())
    assert timings["pyrovae Trace_ELBO --fast"]["mode"] == "compiled"  # no CUDA graph on the CPU


def test_profile_and_log_likelihood_timing_on_real_digits(binary_batch):
    from benchmarks.bench import profile_step, time_log_likelihood

    profile = profile_step(binary_batch, batch_size=16, hidden=(8,), z_dim=2, steps=3, top=5)
    rows = profile["top"]
    assert profile["wall_us_per_step"] > 0 and profile["operator_cpu_us_per_step"] > 0
    assert len(rows) == 5 and all(r["self_cpu_us_per_step"] >= 0 for r in rows)
    assert sum(r["self_cpu_share"] for r in rows) <= 1 + 1e-9
    timing = time_log_likelihood(binary_batch[:48], binary_batch[48:], epochs=1, num_samples=20, hidden=(8, 8), z_dim=2)
    assert timing["images"] == 16 and timing["seconds"] > 0
    assert 0 < timing["nll"] < 784 * 0.7  # a real estimate: above 0, below the all-pixels-at-1/2 code length


def test_the_report_names_where_it_ran():
    from benchmarks.bench_report import markdown
    from benchmarks.host import machine
    from pyrovae.environment import cpu_model, versions

    v = versions()
    text = markdown({"device": "cpu (x86_64, 2 threads)", "machine": {**machine(), "torch_threads": 2},
                     "versions": v, "protocol": {"z_dim": 50, "optimizer": "Adam", "dataset": "d", "blocks": 4,
                                                 "steps_per_block": 2},
                     "batch_sweep": {}, "width_sweep": {}, "epoch_seconds": None, "command": "c"})
    assert f"\n\nRan on: {cpu_model()}, " in text and f", torch threads 2; torch {v['torch']}, pyro {v['pyro']}" in text

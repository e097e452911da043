"""--fast's matrix products run on the implementation measured faster on this machine: the faster
candidate is picked (a clock of the test's own makes one slow: no real timing is asserted), the
choice is cached and used without timing the next time, a cache that is damaged, a symbolic link
or unwritable is ignored, the global random state is not drawn from, the choice is recorded in
metrics.json and said in one line, and the CPU is named as /proc/cpuinfo names it."""
import copy
import functools
import json

import pytest
import torch
from torch.fx.experimental.proxy_tensor import make_fx

import pyrovae
import pyrovae.infer.choice as choice
import pyrovae.infer.matmul as gemm
from pyrovae.cli import main
from pyrovae.environment import cache_dir, cpu_model
from pyrovae.infer.compiled import CompiledSVIStep
from pyrovae.infer.svi import SVIStep, make_optimizer


class Clock:
    """A clock that moves only when a candidate runs: each call of ``cost(name, f)`` adds its cost."""

    def __init__(self):
        self.now = 0.0
        self.calls = []

    def __call__(self):
        return self.now

    def cost(self, name, f, seconds):
        def run():
            self.calls.append(name)
            self.now += seconds
            return f()
        return run


def cache_file():
    return cache_dir() / choice.CACHE_FILE


def test_fastest_picks_the_lowest_median_and_rotates_the_order():
    clock = Clock()
    candidates = {"a": clock.cost("a", lambda: None, 3e-3), "b": clock.cost("b", lambda: None, 1e-3)}
    name, seconds = choice.fastest(candidates, budget_s=0.05, timer=clock)
    assert name == "b" and seconds == pytest.approx({"a": 3e-3, "b": 1e-3})
    rounds = clock.calls[2:]  # after one warm-up call each
    assert rounds[:2] == ["a", "b"] and rounds[2:4] == ["b", "a"]  # each round starts with the next candidate
    clock = Clock()
    candidates = {"a": clock.cost("a", lambda: None, 1e-3), "b": clock.cost("b", lambda: None, 3e-3)}
    assert choice.fastest(candidates, budget_s=0.05, timer=clock)[0] == "a"


def fake_timing(monkeypatch, slow: str, clock: Clock):
    """--fast's timing of the products on ``clock``, with the ``slow`` backend 10 ms a call, the other 1 ms."""
    real = gemm.matmul_candidates

    def candidates(products):
        return {name: clock.cost(name, f, 10e-3 if name == slow else 1e-3) for name, f in real(products).items()}

    monkeypatch.setattr(gemm, "matmul_candidates", candidates)
    monkeypatch.setattr(choice, "fastest", functools.partial(choice.fastest, timer=clock))


def uncompiled(monkeypatch):
    """The captured graph run as it is, without inductor: the choice is what these tests check, in seconds."""
    monkeypatch.setattr(CompiledSVIStep, "_compile_graph", lambda self, traced, example: traced)


def steps(vae, matmul="auto"):
    a, b = copy.deepcopy(vae), copy.deepcopy(vae)
    notes = []
    eager = SVIStep(a, pyrovae.make_elbo("trace"), make_optimizer(a.parameters(), 1e-3))
    fast = CompiledSVIStep(b, pyrovae.make_elbo("trace"), make_optimizer(b.parameters(), 1e-3), log=notes.append,
                           matmul=matmul, note=notes.append)
    return eager, fast, notes


@pytest.mark.parametrize("slow, chosen", [("onednn", "mm"), ("mm", "onednn")])
def test_the_faster_backend_is_chosen_and_cached(small_vae, binary_batch, monkeypatch, slow, chosen):
    uncompiled(monkeypatch)
    clock = Clock()
    fake_timing(monkeypatch, slow, clock)
    eager, fast, notes = steps(small_vae)
    for i in range(2):
        torch.manual_seed(i)
        expected = eager(binary_batch)
        torch.manual_seed(i)
        assert torch.allclose(fast(binary_batch), expected, rtol=1e-5)
    assert fast.compiled and clock.calls
    record = fast.fast_step
    assert record["matmul"] == chosen and record["chosen_by"] == "measured"
    assert record["ms"] == {slow: pytest.approx(10.0), chosen: pytest.approx(1.0)}
    assert record["cpu"] == cpu_model() and record["threads"] == torch.get_num_threads() and record["products"] == 11
    assert (fast.onednn_matmuls > 0) == (chosen == "onednn")
    name = {"onednn": "oneDNN", "mm": "torch.mm"}
    assert notes == [f"--fast: the matrix products run on {name[chosen]}, the faster on {cpu_model()} at "
                     f"{record['threads']} thread{'s' * (record['threads'] != 1)}, timed: {name[chosen]} 1 ms, "
                     f"{name[slow]} 10 ms for the step's 11 products"]
    cached = json.loads(cache_file().read_text())
    assert cached["format"] == choice.CACHE_FORMAT
    [(key, entry)] = cached["choices"].items()
    assert key.startswith(f"{cpu_model()} | torch {torch.__version__} | ") and "matmul addmm(" in key
    assert entry == {"choice": chosen, "ms": record["ms"]}

    def no_timing(*args, **kwargs):
        raise AssertionError("timed again, though the cache holds the choice")

    monkeypatch.setattr(choice, "fastest", no_timing)
    again, notes = steps(small_vae)[1:]
    again(binary_batch)
    assert again.fast_step == {**record, "chosen_by": "cache"}
    assert notes[0].startswith(f"--fast: the matrix products run on {name[chosen]}") and "as cached" in notes[0]


@pytest.mark.parametrize("matmul", ["onednn", "mm"])
def test_a_setting_takes_its_backend_without_timing(small_vae, binary_batch, monkeypatch, matmul):
    uncompiled(monkeypatch)
    monkeypatch.setattr(choice, "fastest", None)  # would fail if called
    fast, notes = steps(small_vae, matmul)[1:]
    fast(binary_batch)
    assert fast.fast_step["matmul"] == matmul and fast.fast_step["chosen_by"] == "setting"
    assert fast.fast_step["ms"] is None and (fast.onednn_matmuls > 0) == (matmul == "onednn")
    assert not cache_file().exists()


def products():
    graph = make_fx(lambda x, w, b: torch.addmm(b, x, w.t()).t() @ x)(torch.ones(4, 3), torch.ones(5, 3), torch.ones(5))
    return gemm.matmul_products(graph)


def test_the_products_are_those_of_the_graph_and_timing_them_draws_nothing():
    found = products()
    assert gemm.describe_products(found) == "addmm(5,4x3,3x5t) mm(5x4t,4x3)"
    state = torch.get_rng_state()
    candidates = gemm.matmul_candidates(found)
    assert list(candidates) == ["onednn", "mm"]
    for f in candidates.values():
        f()
    assert torch.equal(torch.get_rng_state(), state)


def timed(monkeypatch, clock=None):
    """choose_matmul's timing on a clock of the test's: oneDNN 1 ms, torch.mm 3 ms; the clock's calls say whether it ran."""
    clock = clock or Clock()
    monkeypatch.setattr(choice, "fastest", functools.partial(choice.fastest, timer=clock))
    real = gemm.matmul_candidates
    monkeypatch.setattr(gemm, "matmul_candidates", lambda p: {
        n: clock.cost(n, f, 1e-3 if n == "onednn" else 3e-3) for n, f in real(p).items()})
    return clock


def graph():
    return make_fx(lambda x, w, b: torch.addmm(b, x, w.t()))(torch.ones(4, 3), torch.ones(5, 3), torch.ones(5))


@pytest.mark.parametrize("content", [b"", b"\xff\xfe not utf-8", b"{not json", b"[1, 2]", b'{"format": "other"}',
                                     b'{"format": "pyrovae-fast-step-1", "choices": []}', "bad entry", b"[" * 100000])
def test_a_damaged_cache_is_timed_again_and_replaced(monkeypatch, content):
    timed(monkeypatch)
    assert gemm.choose_matmul(graph())["chosen_by"] == "measured"
    if content == "bad entry":  # the right key, an entry that is no choice
        data = json.loads(cache_file().read_text())
        data["choices"] = {k: {"choice": "gpu", "ms": {"onednn": 1, "mm": 2}} for k in data["choices"]}
        content = json.dumps(data).encode()
    cache_file().write_bytes(content)
    clock = timed(monkeypatch)
    record = gemm.choose_matmul(graph())
    assert record["chosen_by"] == "measured" and record["matmul"] == "onednn" and clock.calls
    assert gemm.choose_matmul(graph())["chosen_by"] == "cache"  # the file written again, whole


def test_a_symbolic_link_is_neither_read_nor_written_through(monkeypatch, tmp_path):
    timed(monkeypatch)
    gemm.choose_matmul(graph())
    target = tmp_path / "elsewhere.json"
    target.write_bytes(cache_file().read_bytes())  # a readable cache that holds the choice
    cache_file().unlink()
    cache_file().symlink_to(target)
    before = target.read_bytes()
    assert gemm.choose_matmul(graph())["chosen_by"] == "measured"  # the link not read
    assert target.read_bytes() == before and not cache_file().is_symlink()  # replaced, not written through
    folder = tmp_path / "linked-folder"
    folder.symlink_to(cache_dir())  # a cache folder that is a link: not used at all
    monkeypatch.setenv("PYROVAE_CACHE_DIR", str(folder))
    clock = timed(monkeypatch)
    assert gemm.choose_matmul(graph())["chosen_by"] == "measured" and clock.calls


def test_a_folder_that_cannot_be_made_leaves_the_choice_uncached(monkeypatch, tmp_path):
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("PYROVAE_CACHE_DIR", str(tmp_path / "a-file" / "cache"))  # below a file: no folder possible
    timed(monkeypatch)
    assert gemm.choose_matmul(graph())["chosen_by"] == "measured"
    assert gemm.choose_matmul(graph())["chosen_by"] == "measured"


def test_the_cache_folder_is_the_users_cache_of_pyrovae(monkeypatch, tmp_path):
    """The choices are kept where the explorer's runtime is (pyrovae.environment.cache_dir), for every setting."""
    monkeypatch.chdir(tmp_path)  # where a relative folder would be made
    monkeypatch.delenv("PYROVAE_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert choice._folder(create=True) == tmp_path / "xdg" / "pyrovae"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # not absolute: ignored, as the XDG specification says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert choice._folder(create=True) == tmp_path / "home" / ".cache" / "pyrovae"
    monkeypatch.setenv("PYROVAE_CACHE_DIR", "~/own")
    assert choice._folder(create=True) == tmp_path / "home" / "own"
    assert not (tmp_path / "relative").exists() and not (tmp_path / "~").exists()


def test_the_cache_keeps_the_latest_choices(monkeypatch):
    monkeypatch.setattr(choice, "CACHE_ENTRIES", 3)
    for i in range(5):
        assert choice.write_cache(f"k{i}", {"choice": "mm", "ms": {"mm": 1.0}})
    assert list(choice.read_cache()) == ["k2", "k3", "k4"]


def test_metrics_json_records_the_choice(mnist_sample, tmp_path, monkeypatch):
    uncompiled(monkeypatch)
    timed(monkeypatch)
    lines = []
    config = pyrovae.TrainConfig(epochs=1, train_limit=200, test_limit=50, z_dim=4, hidden=(16,), batch_size=50,
                                 fast=True, progress=False, out=str(tmp_path / "run"))
    pyrovae.train(config, log=lines.append, dataset=mnist_sample)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["svi_step"] == "compiled"
    assert metrics["fast_step"] == {"matmul": "onednn", "chosen_by": "measured",
                                    "ms": {"onednn": pytest.approx(1.0), "mm": pytest.approx(3.0)}, "cpu": cpu_model(),
                                    "threads": torch.get_num_threads(), "products": 11}
    assert [line for line in lines if line.startswith("--fast: the matrix products run on oneDNN, the faster on ")]


def test_a_resumed_run_keeps_its_own_choice(mnist_sample, tmp_path, monkeypatch):
    """The interrupted run chose oneDNN; by the resume the cache is gone and torch.mm times faster:
    the resumed run still multiplies on oneDNN, as it did (its bits depend on it), untimed."""
    uncompiled(monkeypatch)
    timed(monkeypatch)  # oneDNN 1 ms, torch.mm 3 ms
    config = pyrovae.TrainConfig(epochs=1, train_limit=200, test_limit=50, z_dim=4, hidden=(16,), batch_size=50,
                                 fast=True, progress=False, out=str(tmp_path / "run"))
    pyrovae.train(config, log=lambda line: None, dataset=mnist_sample)
    cache_file().unlink()
    clock = Clock()
    monkeypatch.setattr(choice, "fastest", functools.partial(choice.fastest, timer=clock))
    real = gemm.matmul_candidates
    monkeypatch.setattr(gemm, "matmul_candidates", lambda p: {  # now torch.mm is the faster
        n: clock.cost(n, f, 3e-3 if n == "onednn" else 1e-3) for n, f in real(p).items()})
    lines = []
    pyrovae.resume(tmp_path / "run", epochs=2, log=lines.append, dataset=mnist_sample)
    fast_step = json.loads((tmp_path / "run" / "metrics.json").read_text())["fast_step"]
    assert fast_step["matmul"] == "onednn" and fast_step["chosen_by"].startswith("the run's own choice")
    assert not clock.calls
    assert "--fast: the matrix products run on oneDNN (the run's own choice before it was interrupted)" in lines


def test_an_earlier_choice_on_another_cpu_or_thread_count_is_timed_again(monkeypatch):
    clock = timed(monkeypatch)
    kept = {**gemm.choose_matmul(graph()), "matmul": "mm"}
    assert gemm.choose_matmul(graph(), earlier=kept)["matmul"] == "mm"
    for other in ({"cpu": "another CPU"}, {"threads": kept["threads"] + 1}, {"products": 7}, {"matmul": "gpu"}):
        clock.calls.clear()
        record = gemm.choose_matmul(graph(), earlier={**kept, **other})
        assert record["matmul"] == "onednn" and record["chosen_by"] == "cache"


def test_fast_matmul_is_a_setting_of_fast_runs_on_the_cpu(capsys, tmp_path):
    for argv, message in [(["--fast-matmul", "mm"], "this run is not --fast; drop --fast-matmul or add --fast"),
                          (["--fast", "--cuda", "--fast-matmul", "onednn"], "this run trains on the GPU; drop "
                                                                            "--fast-matmul")]:
        assert main([*argv, "--out", str(tmp_path / "run")]) == 2
        err = capsys.readouterr().err
        assert err == f"error: --fast-matmul {argv[-1]} sets how --fast multiplies matrices on the CPU, but {message}\n"
    with pytest.raises(SystemExit):
        main(["--fast", "--fast-matmul", "blas"])
    assert capsys.readouterr().err == ("error: argument --fast-matmul: invalid choice: 'blas' (choose from 'auto', "
                                       "'onednn', 'mm') (see --help)\n")
    with pytest.raises(pyrovae.ConfigError, match="unknown fast_matmul 'blas'; choose one of auto, onednn, mm"):
        pyrovae.TrainConfig(fast=True, fast_matmul="blas").validate()
    assert not (tmp_path / "run").exists()


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R)   Platinum 8480+
flags\t\t: fpu vme sse avx avx2 avx512f avx512bw amx_bf16 amx_tile
"""


@pytest.mark.parametrize("text, expected", [
    (CPUINFO, "Intel(R) Xeon(R) Platinum 8480+ (avx2, avx512f, amx_tile)"),
    (CPUINFO.replace(" avx2 avx512f avx512bw amx_bf16 amx_tile", ""), "Intel(R) Xeon(R) Platinum 8480+"),
    ("processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t: sse avx avx2\n" * 2, "AMD EPYC 7B13 (avx2)"),
])
def test_cpu_model_names_the_cpu_and_its_vector_units(tmp_path, text, expected):
    (tmp_path / "cpuinfo").write_text(text)
    assert cpu_model(str(tmp_path / "cpuinfo")) == expected


def test_cpu_model_without_cpuinfo_names_the_platform(tmp_path, monkeypatch):
    import platform

    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert cpu_model(str(tmp_path / "missing")) == "arm"
    monkeypatch.setattr(platform, "processor", lambda: "")
    monkeypatch.setattr(platform, "machine", lambda: "")
    assert cpu_model(str(tmp_path / "missing")) == "unknown CPU"

"""scripts/explore.py writes the explorer page's folder: the page, the run's ONNX export, the runtime and
explorer.json (the dimensions by KL, the test images with their posterior means); bad input is one line,
exit status 2, nothing written. The runtime here is a stand-in of three small files (runtime.FILES
patched to their checksums): the page itself runs in tests/export/test_explore_browser.py."""
import base64
import hashlib
import io
import json
import os
import shutil
import tarfile

import numpy as np
import torch
from export_helpers import model_of

from pyrovae.cli.explore import explore_main
from pyrovae.environment import cache_dir
from pyrovae.export import runtime
from pyrovae.training.run import Run

NAMES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm")


def tarball(path, files: dict) -> bytes:
    """An npm-style tarball at ``path`` holding ``package/dist/<name>`` for each of ``files``; its bytes."""
    with tarfile.open(path, "w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(f"package/dist/{name}")
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path.read_bytes()


def run_dataset(run):
    """The run's own data set, as the explorer reads it."""
    with Run.open(run) as opened:
        return opened.dataset(log=lambda s: None)


def refused(argv, capsys) -> str:
    try:
        code = explore_main([str(a) for a in argv])
    except SystemExit as stop:  # the flags' parser exits
        code = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("error: "), (code, err)
    return err[0]


def test_the_folder_holds_the_page_the_export_and_the_runtime(trained, fake_runtime, tmp_path, capsys):
    run, out = trained("bernoulli-mlp"), tmp_path / "pages" / "explorer"
    assert explore_main([str(run), "--out", str(out), "--runtime", str(fake_runtime), "--test-images", "5",
                         "--sliders", "3"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["explorer.js", "explorer.json", "index.html", "model", "runtime"]
    assert sorted(p.name for p in (out / "model").iterdir()) == ["decoder.onnx", "encoder.onnx", "model.json"]
    assert sorted(p.name for p in (out / "runtime").iterdir()) == sorted(NAMES)
    assert sorted(p.name for p in (tmp_path / "pages").iterdir()) == ["explorer"]  # no temporary folder left
    spec = json.loads((out / "explorer.json").read_text())
    assert sorted(spec["run"]) == ["checkpoint", "epoch", "name", "run_id"] and spec["run"]["name"] == run.name
    vae = model_of(run)
    assert spec["image_shape"] == [1, 28, 28] and spec["z_dim"] == vae.z_dim == 4 and spec["sliders"] == 3
    assert spec["decoder"] == {"file": "model/decoder.onnx", "latent": "z", "output": "mean",
                               "inputs": [{"name": "z", "shape": ["N", 4], "dtype": "float32"}]}
    assert spec["labels"] is None and spec["command"].startswith("python scripts/explore.py ")
    # the dimensions, most KL first: the KL the run recorded for its validation rows at best.pt's epoch
    with Run.open(run) as opened:
        epoch = opened.checkpoint()["epoch"]
        history = [h for h in opened.metrics()["history"] if h["epoch"] == epoch]
    kl = history[0]["kl_per_dim"]["z"]
    assert [d["kl"] for d in spec["dims"]] == sorted(kl, reverse=True)
    assert [d["index"] for d in spec["dims"]] == sorted(range(4), key=lambda d: -kl[d])
    assert all(d["low"] == -3.0 and d["high"] == 3.0 and d["mean"] == 0.0 for d in spec["dims"])  # N(0, I) prior
    assert spec["ranking"].startswith(f"KL per dimension on the validation rows at epoch {epoch}")
    # five test images evenly spaced over the run's 50 test rows, their pixels and posterior means
    dataset = run_dataset(run)
    images = spec["test"]["images"]
    assert [i["row"] for i in images] == [0, 12, 24, 37, 49]
    x = dataset.test_x[[0, 12, 24, 37, 49]].reshape(5, -1)
    pixels = np.stack([np.frombuffer(base64.b64decode(i["pixels"]), np.uint8) for i in images])
    assert np.array_equal(pixels, np.rint(255 * x.numpy()).astype(np.uint8))
    with torch.no_grad():
        loc = vae.encode(x)[0].numpy()
    assert np.allclose([i["z"] for i in images], loc, atol=1e-6, rtol=0)
    assert [i["label"] for i in images] == dataset.test_y[[0, 12, 24, 37, 49]].tolist()
    assert spec["start"] == images[0]["z"] and spec["start_is"] == "the posterior mean of test row 0"
    assert (out / "index.html").read_bytes() == (runtime.Path(runtime.__file__).with_name("page") /
                                                 "index.html").read_bytes()
    assert "python -m http.server" in capsys.readouterr().out


def test_the_kl_comes_from_evaluate_then_the_history_then_is_computed(trained, fake_runtime, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained("bernoulli-mlp"), run)
    metrics = json.loads((run / "metrics.json").read_text())
    metrics["evaluation"] = {"checkpoint": "best.pt", "kl_per_dim": {"z": [1.0, 4.0, 2.0, 3.0]}}
    (run / "metrics.json").write_text(json.dumps(metrics))

    def dims(out, **flags):
        assert explore_main([str(run), "--out", str(tmp_path / out), "--runtime", str(fake_runtime),
                             *[str(v) for kv in flags.items() for v in kv]]) == 0
        spec = json.loads((tmp_path / out / "explorer.json").read_text())
        return [d["index"] for d in spec["dims"]], [d["kl"] for d in spec["dims"]], spec["ranking"]

    assert dims("a") == ([1, 3, 2, 0], [4.0, 3.0, 2.0, 1.0], "KL per dimension on the test rows (evaluate.py, "
                                                            "metrics.json evaluation, best.pt)")
    metrics["evaluation"]["checkpoint"] = "checkpoint.pt"  # another checkpoint's KL is not used
    for entry in metrics["history"]:
        entry.pop("kl_per_dim", None)
    (run / "metrics.json").write_text(json.dumps(metrics))
    order, kl, ranking = dims("b")
    assert ranking == "KL per dimension computed on 50 test rows (closed form)"
    vae = model_of(run)
    with torch.no_grad():
        loc, scale = vae.encode(run_dataset(run).test_x.reshape(50, -1))
    want = (0.5 * (scale**2 + loc**2 - 1 - torch.log(scale**2))).mean(0)  # closed form against N(0, I)
    assert np.allclose(kl, sorted(want.tolist(), reverse=True), rtol=1e-5, atol=1e-6)
    assert order == torch.argsort(want, descending=True).tolist()


def test_a_flow_guide_orders_by_the_variance_of_the_posterior_means(trained, fake_runtime, tmp_path):
    run = trained("cb-iaf-vamp")  # an IAF guide (no KL per dimension) and a VampPrior (no closed-form spread)
    assert explore_main([str(run), "--out", str(tmp_path / "a"), "--runtime", str(fake_runtime), "--test-images",
                         "6"]) == 0
    spec = json.loads((tmp_path / "a" / "explorer.json").read_text())
    assert spec["ranking"].startswith("by the variance of the test images' posterior means (the KL per dimension "
                                      "is not defined: q(z|x) is not factorized")
    vae, rows = model_of(run), [i["row"] for i in spec["test"]["images"]]
    with torch.no_grad():
        loc, scale = vae.encode(run_dataset(run).test_x[rows].reshape(len(rows), -1))
        for transform in vae.posterior_family.distribution(loc, scale).transforms:
            loc = transform(loc)  # the flow's image of the base mean: what a reconstruction decodes
    z = np.array([i["z"] for i in spec["test"]["images"]])
    assert np.allclose(z, loc.numpy(), atol=1e-5, rtol=0)
    variance = z.var(0, ddof=1)
    assert np.allclose([d["kl"] for d in spec["dims"]], np.sort(variance)[::-1], rtol=1e-4)
    assert all(d["low"] < d["mean"] < d["high"] for d in spec["dims"])  # the VampPrior's spread, drawn


def test_the_runtime_comes_from_a_tarball_or_is_fetched_by_npm_into_the_cache(trained, fake_runtime, tmp_path,
                                                                              monkeypatch, capsys):
    files = {n: (fake_runtime / n).read_bytes() for n in NAMES}
    data = tarball(tmp_path / "onnxruntime-web-1.30.0.tgz", files)
    assert explore_main([str(trained("bernoulli-mlp")), "--out", str(tmp_path / "a"), "--test-images", "0",
                         "--runtime", str(tmp_path / "onnxruntime-web-1.30.0.tgz")]) == 0
    assert all((tmp_path / "a" / "runtime" / n).read_bytes() == files[n] for n in NAMES)
    assert json.loads((tmp_path / "a" / "explorer.json").read_text())["test"]["images"] == []
    # no --runtime: npm packs the tarball (a stand-in npm here), checked against the pinned integrity, into the cache
    monkeypatch.setattr(runtime, "INTEGRITY", "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode())
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/npm-args\n"
                   f"cp {tmp_path}/onnxruntime-web-1.30.0.tgz \"$5\"/\n")
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    capsys.readouterr()
    assert explore_main([str(trained("bernoulli-mlp")), "--out", str(tmp_path / "b"), "--test-images", "0"]) == 0
    assert (tmp_path / "npm-args").read_text().startswith("pack onnxruntime-web@1.30.0 --silent --pack-destination ")
    assert "fetching onnxruntime-web@1.30.0" in capsys.readouterr().out
    cached = cache_dir() / "onnxruntime-web-1.30.0"
    assert sorted(p.name for p in cached.iterdir()) == sorted(NAMES)
    assert sorted(p.name for p in cache_dir().iterdir()) == ["onnxruntime-web-1.30.0"]  # no temporary folder left
    npm.write_text("#!/bin/sh\nexit 1\n")  # the cache is used from now on: npm is not run again
    assert explore_main([str(trained("bernoulli-mlp")), "--out", str(tmp_path / "c"), "--test-images", "0"]) == 0
    assert (tmp_path / "c" / "runtime" / NAMES[2]).read_bytes() == files[NAMES[2]]


def test_a_runtime_that_cannot_be_had_or_differs_is_one_line(trained, fake_runtime, tmp_path, monkeypatch, capsys):
    run = trained("bernoulli-mlp")
    line = refused([run, "--out", tmp_path / "a", "--no-fetch"], capsys)
    assert "onnxruntime-web@1.30.0, is not in the cache" in line and "npm pack onnxruntime-web@1.30.0" in line
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no npm
    assert "npm, which fetches it, is not installed" in refused([run, "--out", tmp_path / "a"], capsys)
    (fake_runtime / NAMES[1]).write_text("another version")
    assert f"{NAMES[1]} is not the file of onnxruntime-web@1.30.0" in refused(
        [run, "--out", tmp_path / "a", "--runtime", fake_runtime], capsys)
    (fake_runtime / NAMES[0]).unlink()
    assert f"has no {NAMES[0]}" in refused([run, "--out", tmp_path / "a", "--runtime", fake_runtime], capsys)
    assert "does not exist" in refused([run, "--out", tmp_path / "a", "--runtime", tmp_path / "none"], capsys)
    (tmp_path / "junk.tgz").write_text("not a tarball")
    assert "is not a readable npm tarball" in refused([run, "--out", tmp_path / "a", "--runtime",
                                                       tmp_path / "junk.tgz"], capsys)
    tarball(tmp_path / "short.tgz", {NAMES[0]: b"x"})
    assert f"has no package/dist/{NAMES[1]}" in refused([run, "--out", tmp_path / "a", "--runtime",
                                                         tmp_path / "short.tgz"], capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.tgz", "ort", "short.tgz"]  # no cache folder made


def test_bad_input_is_one_line_and_nothing_is_written(trained, fake_runtime, tmp_path, capsys):
    run = trained("bernoulli-mlp")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("mine")
    assert refused([run, "--out", taken, "--runtime", fake_runtime], capsys) == (
        f"error: --out {taken} exists and is not empty; explore writes a new folder: choose another path, or remove "
        "that folder first")
    assert [p.name for p in taken.iterdir()] == ["mine.txt"]
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert "is a symbolic link; explore writes a new folder" in refused([run, "--out", tmp_path / "link", "--runtime",
                                                                         fake_runtime], capsys)
    assert "--sliders must be a positive integer" in refused([run, "--out", tmp_path / "a", "--sliders", "0"], capsys)
    assert "--test-images must be 0 or more" in refused([run, "--out", tmp_path / "a", "--test-images", "-1"], capsys)
    assert "does not exist" in refused([tmp_path / "no-run", "--out", tmp_path / "a"], capsys)
    line = refused([trained("gaussian-table"), "--out", tmp_path / "a", "--runtime", fake_runtime], capsys)
    assert "was trained on a table, not images" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "ort", "taken"]


def test_a_failure_midway_leaves_nothing(trained, fake_runtime, tmp_path, monkeypatch):
    def broken(source, folder, what):
        folder.mkdir()
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runtime, "_copy", broken)
    code = explore_main([str(trained("bernoulli-mlp")), "--out", str(tmp_path / "new" / "page"), "--runtime",
                         str(fake_runtime)])
    assert code == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ort"]  # nor the parent folder made for it


def test_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("PYROVAE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "pyrovae"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative")  # not absolute: ignored, as the XDG specification says
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "pyrovae"
    monkeypatch.setenv("PYROVAE_CACHE_DIR", str(tmp_path / "own"))
    assert cache_dir() == tmp_path / "own"

"""The explorer page in a real browser: headless Chromium loads the page from a local HTTP server, runs the
exported decoder with onnxruntime-web (WebAssembly), and draws what the Python decoder computes. Skipped,
with its reason, where Chromium, websocket-client or the runtime (cached, or fetched once by npm) cannot be
had."""
import json

import numpy as np
import pytest
import torch
from browser import Browser, chromium, serve
from export_helpers import model_of

from pyrovae.export.explore import build_explorer

#: the largest difference allowed between the page's float values and PyTorch's (float32 in both)
TOLERANCE = 1e-4
READY = "document.readyState === 'complete' && !!window.pyrovaeExplorer"


@pytest.fixture
def browser_setup(explorer_runtime, with_explorer_runtime):
    """Chromium's path, with the runtime in this test's cache; else the test skips with the reason."""
    executable = chromium()
    if executable is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    pytest.importorskip("websocket", reason="websocket-client is not installed (pip install -e \".[test]\")")
    return executable


def test_the_page_draws_the_decoders_mean_and_clicks_set_the_posterior_mean(browser_setup, trained, tmp_path):
    run, page = trained("bernoulli-mlp"), tmp_path / "page"
    spec = build_explorer(run, page, test_images=4, log=lambda line: None)
    vae = model_of(run)
    z = torch.tensor([[0.8, -1.3, 0.25, 2.1]])  # (1, 4): away from the start, every dimension set
    with torch.no_grad():
        want = vae.likelihood(vae.decoder(z)).mean[0].numpy()  # (784,) the decoder's mean
    with serve(page) as url, Browser(browser_setup, tmp_path / "profile") as browser:
        browser.open(url, READY)
        browser.evaluate("window.pyrovaeExplorer.ready.then(() => true)")
        assert browser.evaluate("window.pyrovaeExplorer.latent()") == pytest.approx(spec["start"], abs=1e-7)
        shown = browser.evaluate("Array.from(document.querySelectorAll('#sliders input'), (s) => Number(s.value))")
        step = [(d["high"] - d["low"]) / 600 for d in spec["dims"][:4]]
        assert len(shown) == 4 and all(abs(v - spec["start"][d["index"]]) <= s / 2 + 1e-9  # the sliders show the start
                                       for v, d, s in zip(shown, spec["dims"], step))
        browser.evaluate(f"window.pyrovaeExplorer.setLatent({json.dumps(z[0].tolist())}).then(() => true)")
        got = np.array(browser.evaluate("window.pyrovaeExplorer.pixels()"))
        assert got.shape == want.shape and np.max(np.abs(got - want)) <= TOLERANCE
        rgba = np.array(browser.evaluate("window.pyrovaeExplorer.drawnBytes()")).reshape(28, 28, 4)
        expected = np.rint(255 * np.clip(want, 0, 1)).reshape(28, 28)
        assert np.max(np.abs(rgba[..., 0] - expected)) <= 1
        assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 0] == rgba[..., 2]).all() and (rgba[..., 3] == 255).all()
        # a click on the third test image sets z to its posterior mean, and the slider of the top dimension follows
        browser.evaluate("document.querySelectorAll('#strip canvas')[2].click()")
        third = spec["test"]["images"][2]
        with torch.no_grad():
            loc = vae.encode(torch.tensor(np.array([run_row(run, third["row"])])))[0][0]
        assert browser.evaluate("window.pyrovaeExplorer.latent()") == pytest.approx(loc.tolist(), abs=1e-6)
        top = spec["dims"][0]["index"]
        assert float(browser.evaluate("document.querySelector('#sliders input').value")) == pytest.approx(
            float(loc[top]), abs=(spec["dims"][0]["high"] - spec["dims"][0]["low"]) / 600)
        browser.evaluate("window.pyrovaeExplorer.setLatent(window.pyrovaeExplorer.latent()).then(() => true)")
        assert browser.evaluate("document.getElementById('status').className") == ""
        png = browser.screenshot()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    (tmp_path / "explorer.png").write_bytes(png)


def run_row(run, row: int) -> list:
    """Row ``row`` of the run's test set, in data units."""
    from pyrovae.training.run import Run

    with Run.open(run) as opened:
        return opened.dataset(log=lambda line: None).test_x[row].reshape(-1).tolist()


def decoded(browser, call: str) -> np.ndarray:
    """The page's decoder mean after the promise-returning ``call`` on window.pyrovaeExplorer."""
    browser.evaluate(f"window.pyrovaeExplorer.{call}.then(() => true)")
    return np.array(browser.evaluate("window.pyrovaeExplorer.pixels()"))


def drawn_matches(browser, want: np.ndarray) -> bool:
    """The image canvas shows round(255 * clamp(want, 0, 1)) within 1, a grey 28 x 28 image."""
    rgba = np.array(browser.evaluate("window.pyrovaeExplorer.drawnBytes()")).reshape(28, 28, 4)
    return np.max(np.abs(rgba[..., 0] - np.rint(255 * np.clip(want, 0, 1)).reshape(28, 28))) <= 1


def test_the_class_picker_feeds_the_cvae_decoder_and_a_test_image_sets_its_class(browser_setup, trained, tmp_path):
    run, page = trained("cvae-mlp"), tmp_path / "page"
    spec = build_explorer(run, page, test_images=3, log=lambda line: None)
    cvae = model_of(run)
    z = [0.8, -1.3, 0.25, 2.1]

    def want(y: int) -> np.ndarray:
        with torch.no_grad():
            return cvae.decode(torch.tensor([z]), torch.tensor([y])).mean[0].numpy()

    with serve(page) as url, Browser(browser_setup, tmp_path / "profile") as browser:
        browser.open(url, READY)
        browser.evaluate("window.pyrovaeExplorer.ready.then(() => true)")
        start = spec["start_class"]
        assert browser.evaluate("window.pyrovaeExplorer.label()") == start == spec["test"]["images"][0]["class"]
        assert browser.evaluate("document.getElementById('class').value") == str(start)
        browser.evaluate(f"window.pyrovaeExplorer.setLatent({json.dumps(z)}).then(() => true)")
        got3 = decoded(browser, "setLabel(3)")
        assert np.max(np.abs(got3 - want(3))) <= TOLERANCE and drawn_matches(browser, want(3))
        got7 = decoded(browser, "setLabel(7)")  # one class change: another picture, the decoder's for class 7
        assert np.max(np.abs(got7 - want(7))) <= TOLERANCE and drawn_matches(browser, want(7))
        assert np.max(np.abs(got7 - got3)) > 0.05
        browser.evaluate("document.querySelectorAll('#strip canvas')[1].click()")  # its z and its label
        second = spec["test"]["images"][1]
        assert browser.evaluate("window.pyrovaeExplorer.latent()") == pytest.approx(second["z"], abs=1e-7)
        assert browser.evaluate("window.pyrovaeExplorer.label()") == second["class"] == second["label"]
        assert browser.evaluate("document.getElementById('class').value") == str(second["class"])
        assert browser.evaluate("document.getElementById('status').className") == ""


def test_the_hvae_page_decodes_z2_with_z1_at_the_mean_of_p_z1_given_z2(browser_setup, trained, tmp_path):
    run, page = trained("hvae-conv-iaf"), tmp_path / "page"
    spec = build_explorer(run, page, test_images=2, log=lambda line: None)
    hvae = model_of(run)
    z2, z1 = torch.tensor([[0.8, -1.3, 0.25, 2.1]]), torch.tensor([[-0.5, 1.2, 0.3, -2.0]])

    def want(lower, top) -> np.ndarray:
        with torch.no_grad():
            return hvae.likelihood(hvae.decoder(torch.cat([lower, top], -1))).mean[0].numpy()

    with serve(page) as url, Browser(browser_setup, tmp_path / "profile") as browser:
        browser.open(url, READY)
        browser.evaluate("window.pyrovaeExplorer.ready.then(() => true)")
        got = decoded(browser, f"setLatent({json.dumps(z2[0].tolist())})")
        with torch.no_grad():
            prior = hvae.prior1(z2)[0]  # the mean of p(z1|z2)
        assert browser.evaluate("window.pyrovaeExplorer.lower()") == pytest.approx(prior[0].tolist(), abs=TOLERANCE)
        assert np.max(np.abs(got - want(prior, z2))) <= TOLERANCE and drawn_matches(browser, want(prior, z2))
        assert browser.evaluate("document.getElementById('follow').checked") is True
        got = decoded(browser, f"setLower({json.dumps(z1[0].tolist())})")  # z1 by hand: it no longer follows
        assert np.max(np.abs(got - want(z1, z2))) <= TOLERANCE and drawn_matches(browser, want(z1, z2))
        assert browser.evaluate("document.getElementById('follow').checked") is False
        # a test image: z2 and z1 at their posterior means, the picture its reconstruction
        browser.evaluate("document.querySelectorAll('#strip canvas')[1].click()")
        got = decoded(browser, "setLatent(window.pyrovaeExplorer.latent())")
        second = spec["test"]["images"][1]
        assert browser.evaluate("window.pyrovaeExplorer.lower()") == pytest.approx(second["z1"], abs=1e-6)
        with torch.no_grad():
            reconstruction = hvae.reconstruct(torch.tensor([run_row(run, second["row"])]))[0].numpy()
        assert np.max(np.abs(got - reconstruction)) <= TOLERANCE
        got = decoded(browser, "follow(true)")  # z1 follows p(z1|z2) again
        with torch.no_grad():
            prior = hvae.prior1(torch.tensor([second["z"]]))[0]
        assert np.max(np.abs(got - want(prior, torch.tensor([second["z"]])))) <= TOLERANCE
        assert browser.evaluate("document.getElementById('status').className") == ""

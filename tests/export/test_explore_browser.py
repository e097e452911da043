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

from pyrovae.errors import PyrovaeError
from pyrovae.export import runtime
from pyrovae.export.explore import build_explorer

#: the largest difference allowed between the page's float values and PyTorch's (float32 in both)
TOLERANCE = 1e-4
READY = "document.readyState === 'complete' && !!window.pyrovaeExplorer"


@pytest.fixture(scope="session")
def browser_setup():
    """Chromium's path, once the runtime is in the cache; else the test skips with the reason."""
    executable = chromium()
    if executable is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    pytest.importorskip("websocket", reason="websocket-client is not installed (pip install -e \".[test]\")")
    try:
        runtime.find_runtime(None, fetch=True, log=lambda line: None)
    except PyrovaeError as error:
        pytest.skip(f"the page's runtime cannot be had: {error}")
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

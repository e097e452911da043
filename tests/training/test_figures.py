"""Figures that fit the data: padded mosaics whose tiles are the images (grey, RGB, other
channel counts), readable small images, color in TensorBoard, and tables drawn as per-column
scatters and histograms in data units."""
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits

import pyrovae
from pyrovae.training.plots import channel_note, image_grid, plot_samples, reconstruction_grid
from pyrovae.training.report import Reporter, table_figure_data

HISTORY = [{"epoch": 1, "train_elbo": -30.0, "test_elbo": -31.0}, {"epoch": 2, "train_elbo": -25.0, "test_elbo": -26.0}]


def tile(grid, r, c, h, w, pad=1):
    return grid[:, r * (h + pad):r * (h + pad) + h, c * (w + pad):c * (w + pad) + w]


def test_color_grid_tiles_are_the_images_with_white_padding():
    torch.manual_seed(0)
    images = torch.rand(5, 3 * 4 * 5)  # five (3, 4, 5) RGB images, channel-first rows
    grid = image_grid(images, (3, 4, 5), ncols=3)
    assert grid.shape == (3, 2 * 4 + 1, 3 * 5 + 2)  # 1-pixel gaps between tiles, none outside
    for i in range(5):
        assert torch.equal(tile(grid, i // 3, i % 3, 4, 5), images[i].view(3, 4, 5))
    assert bool((grid[:, 4, :] == 1).all()) and bool((grid[:, :, 5] == 1).all())  # the gaps
    assert bool((tile(grid, 1, 2, 4, 5) == 1).all())  # the sixth, empty tile


def test_grey_shapes_and_other_channel_counts():
    images = torch.rand(4, 36)
    assert torch.equal(image_grid(images, (6, 6), 2), image_grid(images, (1, 6, 6), 2))
    four = torch.rand(2, 4 * 6 * 6)
    grid = image_grid(four, (4, 6, 6), 2)
    assert grid.shape == (1, 6, 13) and torch.equal(tile(grid, 0, 1, 6, 6)[0], four[1].view(4, 6, 6)[0])
    assert channel_note((4, 6, 6)) == " (channel 1 of 4 shown)" and channel_note((3, 6, 6)) == ""


def test_8x8_digits_are_not_a_postage_stamp(tmp_path):
    digits = torch.tensor(load_digits().images[:30].reshape(30, 64), dtype=torch.float32) / 16
    plot_samples(digits, (8, 8), tmp_path / "digits.png")
    width, height = Image.open(tmp_path / "digits.png").size
    assert width >= 10 * 0.4 * 100 * 0.9  # 10 tiles of at least 0.4 inch at 100 dpi
    assert height >= 3 * 0.4 * 100 * 0.9


def test_rgb_run_figures_and_color_tensorboard(tmp_path):
    torch.manual_seed(0)
    vae = pyrovae.VAE(x_dim=3 * 30 * 27, z_dim=3, hidden=(16,), arch="conv", image_shape=(3, 30, 27),
                      channels=(4, 8), likelihood="continuous-bernoulli")
    test_x = torch.rand(20, 3 * 30 * 27)
    reporter = Reporter(tmp_path, (3, 30, 27), "rgb", tensorboard=True)
    try:
        reporter.epoch({**HISTORY[0], "kl_scale": 1.0, "seconds": 1.0, "lr": 1e-3}, vae, test_x)
        reporter.finish(HISTORY, vae, test_x)
    finally:
        reporter.close()
    for name in ("elbo_curves.png", "reconstructions.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0
    assert Image.open(tmp_path / "samples.png").mode in ("RGB", "RGBA")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(tmp_path / "tensorboard")).Reload()
    assert set(events.Tags()["images"]) == {"reconstructions", "samples"}
    assert events.Images("samples")[0].height == 10 * 30 + 9  # 100 samples, 10 rows of tiles 1 pixel apart


@pytest.fixture(scope="module")
def cancer():
    """(model-space test rows, raw test rows, column names, a standardized Gaussian VAE)."""
    data = load_breast_cancer()
    x = torch.tensor(data.data, dtype=torch.float32)
    train, test = x[:450], x[450:]
    torch.manual_seed(0)
    vae = pyrovae.VAE(x_dim=30, z_dim=4, hidden=(32,), likelihood="gaussian", image_shape=None,
                      standardization={"mean": train.mean(0).tolist(), "std": train.std(0).tolist()})
    return vae.to_model_space(test), test, list(data.feature_names), vae


def test_table_figures_are_in_data_units_and_written(cancer, tmp_path):
    test_model, test, columns, vae = cancer
    state = torch.get_rng_state()
    originals, reconstructions, samples = table_figure_data(vae, test_model, n=500)
    assert torch.equal(torch.get_rng_state(), state)  # the run's random stream is left alone
    assert torch.allclose(originals, test, rtol=1e-4, atol=1e-3)  # all 119 test rows, back in data units
    assert reconstructions.shape == originals.shape and samples.shape == (500, 30)
    # samples are on the data's scale: column means within a few training std of the data's
    spread = vae.standardizer.std
    assert bool(((samples.mean(0) - test.mean(0)).abs() < 5 * spread).all())
    Reporter(tmp_path, None, "breast cancer", False, columns=columns).finish(HISTORY, vae, test_model)
    for name in ("elbo_curves.png", "reconstructions.png", "samples.png"):
        assert (tmp_path / name).stat().st_size > 0
    again = table_figure_data(vae, test_model, n=500)[2]
    assert torch.equal(again, samples)  # drawn on a stream seeded 0: the same figure every time


def test_fewer_test_images_than_columns_still_show_every_pair():
    digits = torch.from_numpy(load_digits().images[:4].reshape(4, 64) / 16.0).float()
    grid = reconstruction_grid(digits, 1 - digits, (8, 8))  # 4 images, 10 columns asked
    assert grid.shape == (1, 2 * 8 + 1, 4 * 8 + 3)  # one row of originals over one of reconstructions, 1-px gaps
    for i in range(4):
        left = i * 9
        assert torch.equal(grid[0, :8, left:left + 8], digits[i].reshape(8, 8))
        assert torch.equal(grid[0, 9:17, left:left + 8], 1 - digits[i].reshape(8, 8))

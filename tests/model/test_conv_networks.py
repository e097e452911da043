"""The conv networks on images of any channel count and size: shapes, the k blocks of C*H*W
layout, padding equal to explicit zero padding, and (28, 28) unchanged from the one-channel
networks older checkpoints were saved from."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import pyrovae
from pyrovae.model.networks import ConvDecoder, ConvEncoder, _conv_stage, _deconv_stage
from pyrovae.training.checkpoint import FORMAT

SHAPES = [(1, 28, 28), (3, 32, 32), (3, 30, 27), (1, 8, 8)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("k", [1, 2])
def test_shapes_of_encoder_and_decoder(shape, k):
    torch.manual_seed(0)
    d = shape[0] * shape[1] * shape[2]
    enc, dec = ConvEncoder(shape, 5, (4, 8), hidden=16), ConvDecoder(5, shape, k, (4, 8), hidden=16)
    loc, scale = enc(torch.rand(2, 3, d))  # (particles, batch, C*H*W)
    assert loc.shape == scale.shape == (2, 3, 5) and bool((scale > 0).all())
    assert dec(torch.randn(2, 3, 5)).shape == (2, 3, k * d)  # exactly k blocks of C*H*W
    assert dec(torch.randn(5)).shape == (k * d,)
    vae = pyrovae.VAE(x_dim=d, z_dim=5, hidden=(16,), arch="conv", image_shape=shape, channels=(4, 8),
                      likelihood="gaussian" if k == 2 else "bernoulli")
    assert vae.sample(4).shape == vae.reconstruct(torch.rand(4, d)).shape == (4, d)


def test_decoder_blocks_are_channel_first_images_cropped_from_the_padded_map():
    torch.manual_seed(0)
    c, h, w, k = 3, 30, 27, 2
    dec = ConvDecoder(4, (c, h, w), k, (4, 8), hidden=16)
    seen = {}
    dec.upsample.register_forward_hook(lambda m, i, o: seen.update(map=o))
    out = dec(torch.randn(6, 4))  # (6, k*C*H*W)
    assert seen["map"].shape == (6, k * c, 32, 28)  # padded to multiples of 4
    blocks = out.reshape(6, k, c, h, w)
    for j in range(k):
        for ch in range(c):  # block j, channel ch is map channel j*C + ch, top-left (H, W)
            assert torch.equal(blocks[:, j, ch], seen["map"][:, j * c + ch, :h, :w])


def test_encoder_padding_is_zeros_below_and_right():
    torch.manual_seed(0)
    small, padded = ConvEncoder((3, 30, 27), 4, (4, 8), hidden=16), ConvEncoder((3, 32, 28), 4, (4, 8), hidden=16)
    padded.load_state_dict(small.state_dict())  # same weights: the padded sizes agree
    x = torch.rand(5, 3, 30, 27)
    explicit = F.pad(x, (0, 1, 0, 2)).reshape(5, -1)  # (5, 3*32*28)
    for a, b in zip(small(x.reshape(5, -1)), padded(explicit)):
        assert torch.equal(a, b)


def test_sides_under_four_and_tables_are_refused_in_one_line():
    with pytest.raises(pyrovae.ConfigError, match="at least 4x4 pixels, got 3x8"):
        pyrovae.VAE(x_dim=24, arch="conv", image_shape=(3, 8))
    with pytest.raises(pyrovae.ConfigError, match=r"no image shape \(a table\): use --arch mlp or gated"):
        pyrovae.VAE(x_dim=30, arch="conv", image_shape=None)
    with pytest.raises(pyrovae.ConfigError, match="does not hold"):
        pyrovae.VAE(x_dim=100, arch="conv", image_shape=(3, 8, 8))
    vae = pyrovae.VAE(x_dim=30, z_dim=2, hidden=(8,), image_shape=None)  # the MLP takes any D
    assert vae.config()["image_shape"] is None and vae.encode(torch.rand(3, 30))[0].shape == (3, 2)


class OldConvEncoder(nn.Module):
    """The one-channel encoder as it was before (C, H, W) images (sides divisible by 4)."""

    def __init__(self, h, w, z_dim, c1, c2, hidden):
        super().__init__()
        self.h, self.w = h, w
        self.features = nn.Sequential(_conv_stage(1, c1), _conv_stage(c1, c2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c2 * (h // 4) * (w // 4), hidden), nn.ELU(), nn.Linear(hidden, 2 * z_dim))

    def forward(self, x):
        loc, raw = self.head(self.features(x.reshape(-1, 1, self.h, self.w))).chunk(2, dim=-1)
        return loc, F.softplus(raw) + 1e-4


class OldConvDecoder(nn.Module):
    def __init__(self, z_dim, h, w, k, c1, c2, hidden):
        super().__init__()
        self.map_shape = (c2, h // 4, w // 4)
        self.head = nn.Sequential(nn.Linear(z_dim, hidden), nn.ELU(), nn.Linear(hidden, c2 * (h // 4) * (w // 4)),
                                  nn.ELU())
        self.upsample = nn.Sequential(_deconv_stage(c2, c1), _deconv_stage(c1, c1), nn.Conv2d(c1, k, 1))

    def forward(self, z):
        return self.upsample(self.head(z).reshape(-1, *self.map_shape)).reshape(len(z), -1)


@pytest.mark.parametrize("image_shape", [(28, 28), (1, 28, 28)])
def test_28x28_networks_are_the_old_ones(image_shape):
    """Same seed -> the same parameters, names and outputs as the one-channel networks."""
    torch.manual_seed(0)
    old_enc, old_dec = OldConvEncoder(28, 28, 6, 4, 8, 32), OldConvDecoder(6, 28, 28, 2, 4, 8, 32)
    torch.manual_seed(0)
    enc, dec = ConvEncoder(image_shape, 6, (4, 8), hidden=32), ConvDecoder(6, image_shape, 2, (4, 8), hidden=32)
    for old, new in ((old_enc, enc), (old_dec, dec)):
        a, b = old.state_dict(), new.state_dict()
        assert list(a) == list(b) and all(torch.equal(a[n], b[n]) for n in a)
    x, z = torch.rand(7, 784), torch.randn(7, 6)
    assert all(torch.equal(p, q) for p, q in zip(old_enc(x), enc(x)))
    assert torch.equal(old_dec(z), dec(z))


def test_a_checkpoint_of_the_old_conv_networks_loads(tmp_path, mnist_sample):
    torch.manual_seed(1)
    old_enc, old_dec = OldConvEncoder(28, 28, 4, 4, 8, 16), OldConvDecoder(4, 28, 28, 1, 4, 8, 16)
    state_dict = {**{f"encoder.{k}": v for k, v in old_enc.state_dict().items()},
                  **{f"decoder.{k}": v for k, v in old_dec.state_dict().items()}}
    arch = {"x_dim": 784, "z_dim": 4, "hidden": [16], "likelihood": {"name": "bernoulli"}, "arch": "conv",
            "image_shape": [28, 28], "channels": [4, 8]}  # as an older pyrovae recorded it
    torch.save({"format": FORMAT, "vae": arch, "state_dict": state_dict}, tmp_path / "old.pt")
    vae = pyrovae.load(tmp_path / "old.pt")
    assert vae.config() == arch and vae.standardizer is None
    x = mnist_sample.test_x[:8]
    assert all(torch.equal(p, q) for p, q in zip(vae.encode(x), old_enc(x)))

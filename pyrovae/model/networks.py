r"""The two networks of an amortized VAE, as plain :class:`torch.nn.Module` s.

* :class:`Encoder`: :math:`x \mapsto (\mu_\phi(x), \sigma_\phi(x))`, the parameters of
  the diagonal Gaussian guide :math:`q_\phi(z \mid x)`.
* :class:`Decoder`: :math:`z \mapsto o_\theta(z)`, the raw outputs a likelihood turns
  into :math:`p_\theta(x \mid z)`.

Two architectures (``make_networks(arch, ...)``):

* ``"mlp"``: :class:`Encoder` and :class:`Decoder`, MLPs with softplus hidden units (or
  another of :data:`ACTIVATIONS`);
* ``"gated"``: the same MLPs with gated hidden units, :math:`h = (W x + b) \odot
  \sigma(V x + c)` (:class:`GatedLinear`; Dauphin et al. 2017, as in the VampPrior
  paper's VAEs);
* ``"conv"``: :class:`ConvEncoder` and :class:`ConvDecoder` for images (C, H, W) of any
  channel count (``(H, W)``: one channel) and sides of at least 4: the input is zero-padded
  at the bottom and right to sides H', W' that divide by 4, two stride-2 convolution stages
  go down to a (C2, H'/4, W'/4) feature map and the mirror image up, the output is cropped
  back to (H, W); ELU units, dense layers between map and latent. Rows are images
  flattened channel-first, row-major: pixel (c, h, w) is entry c*H*W + h*W + w.

All accept any leading batch dimensions (``(..., in) -> (..., out)``), so vectorized
ELBO particles pass through unchanged. They import nothing from the rest of the package.
"""
import math
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

#: the hidden units of the MLP and gated networks by name ("none": identity, the gated layer's own default)
ACTIVATIONS = {"softplus": nn.Softplus, "relu": nn.ReLU, "elu": nn.ELU, "silu": nn.SiLU, "tanh": nn.Tanh,
               "none": nn.Identity}
#: each architecture's units when none is named, as its networks have always had them
LEGACY_ACTIVATION = {"mlp": "softplus", "gated": "none"}


def activation_of(name: Optional[str], gated: bool) -> str:
    """The units' name: ``name``, or the architecture's own (softplus for the MLP, none for gated units)."""
    name = LEGACY_ACTIVATION["gated" if gated else "mlp"] if name is None else name
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return name


class GatedLinear(nn.Module):
    r"""``(..., in) -> (..., out)``: :math:`a(W x + b) \odot \sigma(V x + c)`, ``a`` the activation
    (the identity by default, as in Dauphin et al. 2017)."""

    def __init__(self, fan_in: int, fan_out: int, activation: str = "none"):
        super().__init__()
        self.value, self.gate = nn.Linear(fan_in, fan_out), nn.Linear(fan_in, fan_out)
        self.activation = ACTIVATIONS[activation]()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.value(x)) * torch.sigmoid(self.gate(x))


def mlp(sizes: Sequence[int], activation: Optional[str] = None, gated: bool = False) -> nn.Sequential:
    """Layers ``sizes[0] -> ... -> sizes[-1]``: linear with ``activation`` units between them
    (softplus by default), or with ``gated`` a :class:`GatedLinear` for every hidden layer
    (identity by default) and a linear output."""
    units = activation_of(activation, gated)
    layers = []
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        hidden = i < len(sizes) - 2
        if gated and hidden:
            layers.append(GatedLinear(fan_in, fan_out, units))
            continue
        layers.append(nn.Linear(fan_in, fan_out))
        if hidden:
            layers.append(ACTIVATIONS[units]())
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    r"""``x (..., x_dim) -> (loc, scale)``, each ``(..., z_dim)``, with
    :math:`\sigma = \mathrm{softplus}(h) + \sigma_{min}` so the guide never degenerates."""

    def __init__(self, x_dim: int, z_dim: int, hidden: Sequence[int] = (400,), min_scale: float = 1e-4,
                 gated: bool = False, activation: Optional[str] = None):
        super().__init__()
        self.net = mlp([x_dim, *hidden, 2 * z_dim], activation, gated=gated)
        self.min_scale = min_scale

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.net(x).chunk(2, dim=-1)  # (..., 2 z_dim) -> 2 x (..., z_dim)
        return loc, F.softplus(raw_scale) + self.min_scale


class Decoder(nn.Module):
    """``z (..., z_dim) -> o (..., out_dim)``: unconstrained outputs for a likelihood
    (``out_dim = outputs_per_pixel * x_dim``)."""

    def __init__(self, z_dim: int, out_dim: int, hidden: Sequence[int] = (400,), gated: bool = False,
                 activation: Optional[str] = None):
        super().__init__()
        self.net = mlp([z_dim, *reversed(tuple(hidden)), out_dim], activation, gated=gated)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def _conv_stage(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution keeping the size, then a 4x4 stride-2 one halving it."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.ELU(),
                         nn.Conv2d(c_out, c_out, 4, stride=2, padding=1), nn.ELU())


def _deconv_stage(c_in: int, c_out: int) -> nn.Sequential:
    """4x4 stride-2 transposed convolution doubling the size, then a 3x3 convolution."""
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1), nn.ELU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.ELU())


def image_dims(image_shape: Optional[Sequence[int]]) -> Tuple[int, int, int]:
    """``(H, W)`` (one channel) or ``(C, H, W)`` -> ``(C, H, W)``; sides of at least 4 pixels."""
    if image_shape is None:
        raise ValueError("the conv networks need images; this data has no image shape (a table): "
                         "use --arch mlp or gated")
    dims = tuple(int(s) for s in image_shape)
    if len(dims) not in (2, 3) or min(dims) <= 0:
        raise ValueError(f"image_shape must be (H, W) or (C, H, W) of positive sizes, got {tuple(image_shape)}")
    c, h, w = dims if len(dims) == 3 else (1, *dims)
    if h < 4 or w < 4:
        raise ValueError(f"the conv networks need images of at least 4x4 pixels, got {h}x{w}")
    return c, h, w


def _padded(side: int) -> int:
    """The side rounded up to a multiple of 4 (two stride-2 stages)."""
    return -(-side // 4) * 4


class ConvEncoder(nn.Module):
    r"""``x (..., C*H*W) -> (loc, scale)``, each ``(..., z_dim)``: images (C, H, W), zero-padded
    at the bottom and right to (C, H', W') with H', W' the next multiples of 4, through
    ``channels[0]`` then ``channels[1]`` feature maps at H'/2 and H'/4, a dense layer of
    ``hidden`` units, and :math:`\sigma = \mathrm{softplus}(h) + \sigma_{min}`.
    ``image_shape`` (H, W) means one channel."""

    def __init__(self, image_shape: Sequence[int], z_dim: int, channels: Sequence[int] = (32, 64),
                 hidden: int = 256, min_scale: float = 1e-4):
        super().__init__()
        self.c, self.h, self.w = image_dims(image_shape)
        self.pad = (0, _padded(self.w) - self.w, 0, _padded(self.h) - self.h)  # F.pad order: left, right, top, bottom
        c1, c2 = channels
        self.features = nn.Sequential(_conv_stage(self.c, c1), _conv_stage(c1, c2), nn.Flatten())
        self.head = nn.Sequential(nn.Linear(c2 * (_padded(self.h) // 4) * (_padded(self.w) // 4), hidden), nn.ELU(),
                                  nn.Linear(hidden, 2 * z_dim))
        self.min_scale = min_scale

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        lead = x.shape[:-1]
        images = x.reshape(-1, self.c, self.h, self.w)  # (..., C*H*W) -> (M, C, H, W), channel-first rows
        if any(self.pad):
            images = F.pad(images, self.pad)  # (M, C, H', W'), zeros below and to the right
        out = self.head(self.features(images)).reshape(*lead, -1)  # (M, 2 z_dim) -> (..., 2 z_dim)
        loc, raw_scale = out.chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale


class ConvDecoder(nn.Module):
    """``z (..., z_dim) -> o (..., k*C*H*W)``: a dense layer to a (channels[1], H'/4, W'/4)
    map, two upsampling stages to (H', W') (the next multiples of 4), a 1x1 convolution to
    ``k*C`` channels (``k = outputs_per_pixel``), cropped to (H, W) and laid out as k blocks
    of C*H*W (each a channel-first image), like the MLP decoder's k blocks of D."""

    def __init__(self, z_dim: int, image_shape: Sequence[int], outputs_per_pixel: int = 1,
                 channels: Sequence[int] = (32, 64), hidden: int = 256):
        super().__init__()
        self.c, self.h, self.w = image_dims(image_shape)
        c1, c2 = channels
        self.map_shape = (c2, _padded(self.h) // 4, _padded(self.w) // 4)
        self.head = nn.Sequential(nn.Linear(z_dim, hidden), nn.ELU(),
                                  nn.Linear(hidden, math.prod(self.map_shape)), nn.ELU())
        self.upsample = nn.Sequential(_deconv_stage(c2, c1), _deconv_stage(c1, c1),
                                      nn.Conv2d(c1, outputs_per_pixel * self.c, 1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        lead = z.shape[:-1]
        maps = self.head(z.reshape(-1, z.shape[-1])).reshape(-1, *self.map_shape)  # (M, C2, H'/4, W'/4)
        out = self.upsample(maps)[..., :self.h, :self.w]  # (M, k*C, H', W') -> (M, k*C, H, W)
        # channel j*C + c is output j of image channel c: flattening gives k blocks of C*H*W
        return out.reshape(*lead, -1)  # (..., k*C*H*W)


ARCHITECTURES = ("mlp", "gated", "conv")


class ConditionalConvEncoder(ConvEncoder):
    """``(x (..., C*H*W), c (..., cond_dim)) -> (loc, scale)``: the :class:`ConvEncoder`'s feature
    maps of x, flattened and joined to the condition ``c`` (e.g. a higher latent layer) before the
    dense layers."""

    def __init__(self, image_shape: Sequence[int], z_dim: int, cond_dim: int, channels: Sequence[int] = (32, 64),
                 hidden: int = 256, min_scale: float = 1e-4):
        super().__init__(image_shape, z_dim, channels, hidden, min_scale)
        flat = self.head[0].in_features
        self.head = nn.Sequential(nn.Linear(flat + cond_dim, hidden), nn.ELU(), nn.Linear(hidden, 2 * z_dim))

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        # rows of one batch shape are taken as they are, their sizes not frozen into a traced graph (export)
        lead = x.shape[:-1] if x.shape[:-1] == c.shape[:-1] else torch.broadcast_shapes(x.shape[:-1], c.shape[:-1])
        images = x.expand(*lead, x.shape[-1]).reshape(-1, self.c, self.h, self.w)  # (M, C, H, W)
        if any(self.pad):
            images = F.pad(images, self.pad)
        features = self.features(images)  # (M, flat)
        out = self.head(torch.cat([features, c.expand(*lead, c.shape[-1]).reshape(-1, c.shape[-1])], dim=-1))
        loc, raw_scale = out.reshape(*lead, -1).chunk(2, dim=-1)  # (..., z_dim) each
        return loc, F.softplus(raw_scale) + self.min_scale


def make_networks(arch: str, x_dim: int, z_dim: int, outputs_per_pixel: int, hidden: Sequence[int] = (400,),
                  image_shape: Optional[Sequence[int]] = (28, 28),
                  channels: Sequence[int] = (32, 64), activation: Optional[str] = None) -> Tuple[nn.Module, nn.Module]:
    """(encoder, decoder) of architecture ``arch``. For ``"mlp"`` and ``"gated"``, ``hidden`` are the
    encoder's widths (the decoder mirrors them) and ``image_shape`` is not used (any D, None for
    vector data); for ``"conv"``, ``hidden[0]`` is the width of the dense layer beside the
    latent, ``channels`` the feature maps at H'/2 and H'/4, and ``x_dim`` must equal C*H*W."""
    if arch in ("mlp", "gated"):
        gated = arch == "gated"
        return (Encoder(x_dim, z_dim, hidden, gated=gated, activation=activation),
                Decoder(z_dim, outputs_per_pixel * x_dim, hidden, gated=gated, activation=activation))
    if arch == "conv":
        if activation is not None:
            raise ValueError("the conv networks have ELU units; --activation applies to --arch mlp and gated")
        dims = image_dims(image_shape)
        if math.prod(dims) != x_dim:
            raise ValueError(f"image_shape {tuple(image_shape)} does not hold x_dim={x_dim} pixels")
        width = hidden[0] if hidden else 256
        if len(channels) != 2 or min(channels) <= 0:
            raise ValueError(f"the conv networks take two positive channel counts, got {tuple(channels)}")
        return (ConvEncoder(image_shape, z_dim, channels, hidden=width),
                ConvDecoder(z_dim, image_shape, outputs_per_pixel, channels, hidden=width))
    raise ValueError(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHITECTURES)}")

"""The memory a run's settings need at the least, checked before anything is built.

The rule: the settings describe networks and a training step whose sizes follow from them
alone, so a lower bound on the memory they take can be computed before the data are read.
Counted, in 4-byte floats:

* the parameters of the networks the settings describe, each held four times by training (its
  value, its gradient and Adam's two moment estimates): the encoder and decoder of ``arch``
  with ``hidden`` (``channels`` for conv) and ``z_dim``, the IAF guide's ``steps`` MADE
  networks, the mixture prior's ``components`` means and scales or the VampPrior's
  ``components`` pseudo-inputs, all for the smallest data the settings allow (one column, 4 x 4
  pixels for conv, or ``image_size`` x ``image_size`` pixels) and one output per pixel;
* one step's latent draws and decoder activations: ``batch_size`` x ``num_particles`` x
  (``z_dim`` + the decoder's hidden widths + one output), as the settings give them (a batch
  larger than the data is taken at its word, since the data are not read yet).

Only what certainly exists is counted (the models with more networks, hvae, cvae and m2, hold
at least these), so settings are refused only when the bound exceeds the machine's memory:
the physical memory of the host, or the GPU's where that is larger (``cuda``, once CUDA is
initialized: the check never initializes it). A model of a
user's own class has sizes of its own: its step counts one float per row and particle.
"""
import os
from typing import List, Optional, Sequence, Tuple

from ..errors import ConfigError

BYTES_PER_FLOAT = 4
#: training keeps each parameter's value, gradient and Adam's two moments
COPIES_PER_PARAMETER = 4
#: the most bytes anything can address (a tensor's size is a 64-bit signed integer)
ADDRESSABLE = 2**63 - 1


def machine_memory(cuda: bool = False) -> Optional[int]:
    """Bytes of physical memory of this host, or of the current GPU where that is larger
    (``cuda``, and CUDA already initialized in this process: asking would initialize it, before
    a distributed run's ranks have chosen their devices); None where neither can be read."""
    sizes = []
    try:
        sizes.append(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        pass
    if cuda:
        try:
            import torch

            if torch.cuda.is_initialized():
                sizes.append(torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory)
        except Exception:  # noqa: BLE001 - a GPU that cannot be asked adds nothing to the bound
            pass
    sizes = [s for s in sizes if isinstance(s, int) and s > 0]
    return max(sizes) if sizes else None


def _linear(sizes: Sequence[int], gated: bool = False) -> int:
    """Weights and biases of dense layers ``sizes[0] -> ... -> sizes[-1]`` (a gated hidden
    layer has two of them)."""
    total = 0
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer = fan_in * fan_out + fan_out
        total += 2 * layer if gated and i < len(sizes) - 2 else layer
    return total


def _conv(c1: int, c2: int, side: int, width: int, z_dim: int) -> int:
    """Parameters of the conv encoder and decoder for one-channel images of ``side`` x ``side``."""
    flat = c2 * (-(-side // 4)) ** 2
    stages = (9 * c1 + c1 + 16 * c1 * c1 + c1) + (9 * c1 * c2 + c2 + 16 * c2 * c2 + c2)  # the encoder's
    stages += (16 * c2 * c1 + c1 + 9 * c1 * c1 + c1) + (16 * c1 * c1 + c1 + 9 * c1 * c1 + c1) + (c1 + 1)  # decoder's
    return stages + _linear([flat, width, 2 * z_dim]) + _linear([z_dim, width, flat])


def network_parameters(config) -> List[Tuple[int, str]]:
    """(parameters, what holds them) of each part the settings describe, at least: the
    networks, the guide's flow, the prior's mixture."""
    if config.model == "custom":
        return []
    side = config.image_size if config.image_size is not None else 1
    if config.arch == "conv":
        side = max(side, 4)  # the conv networks take images of at least 4 x 4 pixels
    x_dim, z = side * side, config.z_dim
    hidden = list(config.hidden)
    if config.arch == "conv":
        width = hidden[0] if hidden else 256
        parts = [(_conv(*config.channels, side, width, z),
                  f"the conv networks (z_dim {_n(z)}, hidden {_n(width)}, channels {_ns(config.channels)}")]
    else:
        gated = config.arch == "gated"
        parts = [(_linear([x_dim, *hidden, 2 * z], gated) + _linear([z, *reversed(hidden), x_dim], gated),
                  f"the {config.arch} networks (z_dim {_n(z)}, hidden {_ns(hidden)}"
                  + (f", image_size {_n(config.image_size)}" if config.image_size is not None else ""))]
    parts[0] = (parts[0][0], parts[0][1] + ")")
    guide, prior = dict(config.guide_options or {}), dict(config.prior_options or {})
    if config.guide == "iaf":
        steps = guide.get("steps", 2)
        widths = list(guide.get("hidden") or [4 * z, 4 * z])
        parts.append((steps * _linear([z + 2 * z, *widths, 2 * z]),
                      f"the iaf guide ({_n(steps)} flow steps of MADE networks {_ns(widths)} on z_dim {_n(z)})"))
    if config.prior == "mog":
        components = prior.get("components", 10)
        parts.append((components * (2 * z + 1), f"the mog prior ({_n(components)} components of z_dim {_n(z)})"))
    elif config.prior == "vamp":
        components = prior.get("components", 500)
        parts.append((components * x_dim, f"the vamp prior ({_n(components)} pseudo-inputs)"))
    return parts


def step_floats(config) -> Tuple[int, str]:
    """(floats, what they are) of one training step's latent draws and decoder activations, at least."""
    rows = config.batch_size * config.num_particles
    what = f"batch_size {_n(config.batch_size)} x num_particles {_n(config.num_particles)}"
    if config.model == "custom":
        return rows, f"one step's draws ({what})"
    widths = list(config.hidden[:1]) if config.arch == "conv" else list(config.hidden)
    return rows * (config.z_dim + sum(widths) + 1), \
        f"one step's draws and activations ({what} x (z_dim {_n(config.z_dim)} + hidden {_ns(widths)} + 1))"


def check_sizes(config, memory: Optional[int]) -> None:
    """Refuse, in one line naming the largest part, settings whose least memory (module
    docstring) exceeds ``memory`` bytes (None: only what a 64-bit size can address)."""
    limit = ADDRESSABLE if memory is None else min(memory, ADDRESSABLE)
    parts = [(n * COPIES_PER_PARAMETER * BYTES_PER_FLOAT, f"{what}: {_n(n)} parameters")
             for n, what in network_parameters(config)]
    floats, what = step_floats(config)
    parts.append((floats * BYTES_PER_FLOAT, f"{what}: {_n(floats)} floats"))
    need = sum(n for n, _ in parts)
    if need <= limit:
        return
    largest = max(parts, key=lambda part: part[0])[1]
    where = "what a 64-bit size can address" if limit == ADDRESSABLE else f"this machine's {_bytes(memory)}"
    raise ConfigError(f"these settings need at least {_bytes(need)} of memory (each network parameter with its "
                      f"gradient and Adam's two moments, and one step's draws), more than {where}; most of it "
                      f"is {largest}; lower those sizes")


def _n(value) -> str:
    """A count as written, or as 1.23e+45 when it is long (exact for integers of any size)."""
    value = int(value)
    if abs(value) < 10**9:
        return str(value)
    digits = str(abs(value))
    mantissa = f"{digits[0]}.{digits[1:3]}".rstrip("0").rstrip(".")
    return f"{'-' if value < 0 else ''}{mantissa}e+{len(digits) - 1}"


def _ns(values) -> str:
    return "[" + ", ".join(_n(v) for v in values) + "]"


def _bytes(n: int) -> str:
    """``n`` bytes in the largest binary unit up to EiB, past that as a count of bytes."""
    units = ["bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    power = 0
    while power < len(units) - 1 and n >= 1024 ** (power + 1):
        power += 1
    if power == 0:
        return f"{n} bytes"
    if n >= 1024 ** len(units):
        return f"{_n(n)} bytes"
    return f"{n / 1024 ** power:.3g} {units[power]}"

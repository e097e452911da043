"""Where a job runs, one source for each fact: the device asked for (:func:`select_device`,
the one CUDA check), its name as records show it (:func:`device_name`), and the versions
of the libraries that computed a result (:func:`versions`), and the user's cache folder
(:func:`cache_dir`)."""
import os
import platform
import subprocess
from pathlib import Path

import torch

from ._version import __version__
from .errors import ConfigError


def cache_dir() -> Path:
    """The user's cache folder of pyrovae (not made here): ``$PYROVAE_CACHE_DIR`` where it is set and not
    empty, else ``$XDG_CACHE_HOME/pyrovae`` where that is an absolute path, else ``~/.cache/pyrovae``."""
    own = os.environ.get("PYROVAE_CACHE_DIR")
    if own:
        return Path(own).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache") / "pyrovae"


def require_cuda() -> None:
    """One line, not a traceback, when ``--cuda`` is asked for and PyTorch sees no GPU."""
    if not torch.cuda.is_available():
        raise ConfigError("--cuda was given but no CUDA GPU is available to PyTorch; drop --cuda to run on the CPU")


def select_device(cuda: bool, index: int = None) -> torch.device:
    """``cuda`` (device ``index`` where given) after :func:`require_cuda`, else the CPU."""
    if not cuda:
        return torch.device("cpu")
    require_cuda()
    return torch.device("cuda", index) if index is not None else torch.device("cuda")


def device_name(device: torch.device) -> str:
    """``"cuda (NVIDIA H100 80GB HBM3)"`` or ``"cpu (x86_64, 2 threads)"``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    threads = torch.get_num_threads()
    return f"cpu ({platform.processor() or platform.machine()}, {threads} thread{'s' * (threads > 1)})"


def versions(device: torch.device = None) -> dict:
    """pyrovae, Python, torch, pyro, torchvision and NumPy versions; on a CUDA ``device``
    also CUDA, cuDNN and the NVIDIA driver."""
    import numpy as np
    import pyro
    import torchvision

    out = {"pyrovae": __version__, "python": platform.python_version(), "torch": torch.__version__,
           "pyro": pyro.__version__, "torchvision": torchvision.__version__, "numpy": np.__version__}
    if device is not None and device.type == "cuda":
        out.update(cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), driver=_nvidia_driver())
    return out


def _nvidia_driver() -> str:
    try:
        return subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"

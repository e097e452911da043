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


#: the vector extensions :func:`cpu_model` names where the CPU has them (the flags of ``/proc/cpuinfo``)
VECTOR_FLAGS = ("avx2", "avx512f", "amx_tile")


def cpu_model(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU as records and caches name it: the first ``model name`` of ``cpuinfo`` (Linux),
    else ``platform.processor()``, else ``platform.machine()``, else ``"unknown CPU"``; followed,
    where ``cpuinfo`` lists the CPU's flags, by those of :data:`VECTOR_FLAGS` it has, in brackets,
    e.g. ``"AMD EPYC 7B13 (avx2)"``, ``"Intel(R) Xeon(R) Platinum 8480+ (avx2, avx512f, amx_tile)"``
    (no brackets where it has none of them). A virtual machine may show a generic name (``"AMD
    EPYC"``), so two machines with equal strings may still be different models; the string is
    what the CPU tells, and the vector units are what decide which kernels run fastest."""
    name, flags = "", None
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                key = key.strip().lower()
                if sep and key == "model name" and not name:
                    name = " ".join(value.split())
                elif sep and key in ("flags", "features") and flags is None:
                    flags = set(value.split())
                if name and flags is not None:
                    break
    except OSError:
        pass
    name = name or platform.processor() or platform.machine() or "unknown CPU"
    if flags is None:
        return name
    present = [flag for flag in VECTOR_FLAGS if flag in flags]
    return f"{name} ({', '.join(present)})" if present else name

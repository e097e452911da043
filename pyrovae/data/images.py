"""A folder of images (PNG, JPEG, BMP, GIF, TIFF, WebP, PPM/PGM) read with Pillow.

Layouts (hidden files and files of other extensions are skipped):

* ``root/*.png``: unlabelled images;
* ``root/<class>/**/*.png``: one subfolder per class; labels 0..K-1 in sorted order of the
  subfolder names (``Dataset.classes``);
* ``root/train/...`` and ``root/test/...`` (optionally ``root/valid/...``), each laid out as
  above: the source's own split. Without it, the seeded split of :mod:`pyrovae.data.splits`
  over the images in sorted order of their relative paths.

Grey images (modes 1, L, LA, I, I;16, F) become (H, W) with 256 levels (8-bit); all other
modes become RGB (3, H, W) (alpha dropped). A folder with both is read as RGB, with a note.
Without ``image_size`` all images must have one size; with it each is resized to
``image_size`` x ``image_size`` (bilinear; the aspect ratio is not kept).
"""
import io
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..errors import ConfigError, DataError, one_line
from .dataset import Dataset, build_dataset
from .splits import TestSize, sha256_folder

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")
SPLIT_FOLDERS = ("train", "test", "valid")


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".")


def _images_under(folder: Path) -> List[Path]:
    return sorted((p for p in folder.rglob("*") if _is_image(p) and not _hidden(p, folder)),
                  key=lambda p: p.relative_to(folder).as_posix())


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def _labelled(folder: Path, root: Path) -> Tuple[List[Path], Optional[List[str]]]:
    """(images, class names per image or None) of one folder laid out flat or by class."""
    top = sorted(p for p in folder.iterdir() if _is_image(p))
    subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    nested = {d.name: _images_under(d) for d in subfolders}
    nested = {k: v for k, v in nested.items() if v}
    if top and nested:
        raise DataError(f"{folder} has images both at its top level ({top[0].name}) and in subfolders "
                        f"({next(iter(nested))}/); put every image in a class subfolder, or none")
    if nested:
        return [p for k in sorted(nested) for p in nested[k]], [k for k in sorted(nested) for _ in nested[k]]
    if not top:
        found = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*")
                       if p.is_file() and not _hidden(p, folder))[:3]  # paths: names repeat in subfolders
        raise DataError(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)}){'; found ' + ', '.join(found) if found else ''}"
                        f"; {'it is not a data set' if folder == root else 'add images'}: give a folder of images")
    return top, None


def _read(path: Path, root: Path):
    """The decoded Pillow image of ``path`` (every pixel read, so a damaged file fails here)."""
    from PIL import Image, UnidentifiedImageError

    try:
        image = Image.open(io.BytesIO(path.read_bytes()))
        image.load()
        return image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise DataError(f"{path} is not a readable image ({one_line(error, 100)}); replace or remove it") from None


def read_images(paths: List[Path], root: Path, image_size: Optional[int]) -> Tuple[np.ndarray, bool, List[str]]:
    """(pixels, color, notes): uint8 (N, H, W) grey or (N, H, W, 3) RGB images of ``paths``."""
    from PIL import Image

    if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1):
        raise ConfigError(f"image_size must be a positive whole number of pixels, got {image_size!r}")
    heads: Dict[Path, Tuple[str, Tuple[int, int]]] = {}
    for p in paths:  # headers first: mode and size decide the array before any pixel is decoded
        try:
            with Image.open(p) as image:
                heads[p] = (image.mode, image.size)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
            raise DataError(f"{p} is not a readable image ({one_line(error, 100)}); replace or remove it") from None
    color = any(mode not in GREY_MODES for mode, _ in heads.values())
    notes = []
    if color and any(mode in GREY_MODES for mode, _ in heads.values()):
        grey = next(p for p in paths if heads[p][0] in GREY_MODES)
        notes.append(f"grey and color images mixed (e.g. {grey.relative_to(root)}): all read as RGB")
    sizes = {size for _, size in heads.values()}
    if image_size is None and len(sizes) > 1:
        a = paths[0]
        b = next(p for p in paths if heads[p][1] != heads[a][1])
        (wa, ha), (wb, hb) = heads[a][1], heads[b][1]
        raise DataError(f"{root}: images of different sizes ({a.relative_to(root)} is {wa}x{ha}, {b.relative_to(root)} "
                        f"is {wb}x{hb}); give --image-size N (image_size=N) to resize all to N x N")
    width, height = (image_size, image_size) if image_size is not None else next(iter(sizes))
    if image_size is not None:
        notes.append(f"images resized to {image_size}x{image_size} (bilinear, aspect ratio not kept)")
    out = np.empty((len(paths), height, width, 3) if color else (len(paths), height, width), dtype=np.uint8)
    for i, p in enumerate(paths):
        image = _read(p, root)
        if image.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # more than 8 bits: scale the range to 0..255
            a = np.asarray(image, dtype=np.float64)
            top = 65535.0 if image.mode.startswith("I;16") else max(float(a.max()), 1.0)
            image = Image.fromarray(np.clip(np.round(a / top * 255), 0, 255).astype(np.uint8))
        image = image.convert("RGB" if color else "L")
        if image.size != (width, height):
            image = image.resize((width, height), Image.BILINEAR)
        out[i] = np.asarray(image)  # (H, W) or (H, W, 3)
    return out, color, notes


def load_image_folder(root: Path, *, image_size: Optional[int] = None, test_size: TestSize = None,
                      split_seed: int = 0) -> Dataset:
    """The :class:`~pyrovae.data.Dataset` of the image folder ``root`` (module docstring)."""
    parts = {name: root / name for name in SPLIT_FOLDERS if (root / name).is_dir()}
    own_split = "train" in parts and "test" in parts
    groups = {name: _labelled(folder, root) for name, folder in parts.items()} if own_split \
        else {"train": _labelled(root, root)}
    class_names = sorted({c for _, names in groups.values() if names for c in names})
    if any(names is None for _, names in groups.values()) and class_names:
        raise DataError(f"{root}: some splits have class subfolders and some do not; give every split the same classes")
    all_paths = [p for paths, _ in groups.values() for p in paths]
    pixels, color, notes = read_images(all_paths, root, image_size)
    arrays, labels, start = {}, {}, 0
    for name, (paths, names) in groups.items():
        arrays[name] = pixels[start:start + len(paths)]
        index = {c: k for k, c in enumerate(class_names)}
        labels[name] = None if names is None else np.array([index[c] for c in names], dtype=np.int64)
        start += len(paths)
    origin = {"kind": "folder", "path": str(root), "files": len(all_paths), "sha256": sha256_folder(root, all_paths),
              **({"image_size": image_size} if image_size else {})}
    if class_names:
        notes.append(f"{len(class_names)} classes from the subfolder names: " + ", ".join(class_names[:10])
                     + (", ..." if len(class_names) > 10 else ""))
    what = tuple(f"the images in {root / n if own_split else root}" for n in SPLIT_FOLDERS)
    ds = build_dataset(arrays["train"], arrays.get("test"), arrays.get("valid"), train_y=labels["train"],
                       test_y=labels.get("test"), name=root.name, source=f"image folder {root}",
                       test_size=test_size, split_seed=split_seed, what=what, origin=origin, notes=notes,
                       classes=class_names or None)
    return ds

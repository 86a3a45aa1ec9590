"""Image data sets for the diffusion loop, loaded whole into memory as floats in [-1, 1].

- `env=digits`: scikit-learn's bundled 8x8 handwritten digits (1797 images, ten classes);
  works offline, no download.
- `env=mnist` / `env=fashion_mnist`: the IDX files of the original distributions in a local
  folder (`env.path`), gzipped or not; nothing is downloaded.
- `env=image_folder`: a folder of images (Pillow); one sub-folder per class gives labels
  (needed for the FID classifier), images directly in the folder give none.

Each image is brought to `env.size` x `env.size` by padding with the background value
(`env.fit=pad`) or by resizing (`env.fit=resize`; non-square images are centre-cropped).
Missing or malformed files raise a one-line DataError that says what is expected.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rlrun.core.errors import ConfigError, DataError
from rlrun.schemas.data import ImageDataConfig

IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IDX_FILES = {"images": "train-images-idx3-ubyte", "labels": "train-labels-idx1-ubyte"}


@dataclass
class ImageData:
    images: Any  # float32 tensor (N, C, H, W) in [-1, 1]
    labels: Any  # int64 tensor (N,) or None
    n_classes: int
    name: str

    def fingerprint(self) -> str:
        """A short hash of the pixels and labels: the key of the cached FID classifier."""
        h = hashlib.sha1()
        h.update(self.images.numpy().tobytes())
        if self.labels is not None:
            h.update(self.labels.numpy().tobytes())
        return h.hexdigest()[:16]


def check_source(cfg: ImageDataConfig) -> None:
    """What preflight checks before a run dir exists, with the functions `load_images` reads
    with: scikit-learn for digits; the IDX files of (Fashion-)MNIST, read whole (header and
    length); the layout of an image folder (the images are decoded by the run)."""
    if cfg.dataset == "digits":
        _digits_loader()
    elif cfg.dataset in ("mnist", "fashion_mnist"):
        _idx_pair(_folder_of(cfg))
    else:
        _image_files(_folder_of(cfg))
        _pillow()


def has_labels(cfg: ImageDataConfig) -> bool:
    """Whether the data set has class labels: digits and (Fashion-)MNIST always; an image
    folder when its images are in one sub-folder per class (the layout, nothing decoded)."""
    if cfg.dataset != "image_folder":
        return True
    return _image_files(_folder_of(cfg))[0][1] >= 0


def load_images(cfg: ImageDataConfig) -> ImageData:
    """Load the configured data set as (N, C, size, size) floats in [-1, 1]."""
    import torch

    if cfg.dataset == "digits":
        raw, labels = _digits()
    elif cfg.dataset in ("mnist", "fashion_mnist"):
        raw, labels = _idx_pair(_folder_of(cfg))
    else:
        raw, labels = _folder(_folder_of(cfg), cfg)
    if cfg.limit is not None:
        raw = raw[:cfg.limit]
        labels = None if labels is None else labels[:cfg.limit]
    x = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))  # (N, C, h, w) in [0, 1]
    x = _fit(x, cfg.size, cfg.fit, cfg.dataset)
    y = None if labels is None else torch.from_numpy(np.asarray(labels, dtype=np.int64))
    n_classes = int(y.max()) + 1 if y is not None else 0
    return ImageData(x * 2 - 1, y, n_classes, cfg.dataset)


def _folder_of(cfg: ImageDataConfig) -> Path:
    """`env.path`, required by every data set but digits (configs validate without it)."""
    if not cfg.path:
        what = ("a folder of images (one sub-folder per class for labels)"
                if cfg.dataset == "image_folder" else
                f"the folder holding {IDX_FILES['images']}[.gz] and {IDX_FILES['labels']}[.gz]")
        raise ConfigError(f"env.path is required for {cfg.dataset}: {what}")
    return Path(str(cfg.path)).expanduser()


def _fit(x: Any, size: int, fit: str, name: str) -> Any:
    import torch.nn.functional as F

    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    if fit == "resize":
        return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                             antialias=size < max(h, w)).clamp(0, 1)
    if h > size or w > size:
        raise ConfigError(f"env.size={size} is smaller than the {h}x{w} images of {name}:"
                          " use a larger env.size or env.fit=resize")
    top, left = (size - h) // 2, (size - w) // 2
    return F.pad(x, (left, size - w - left, top, size - h - top), value=0.0)


def _digits_loader() -> Any:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ConfigError("env=digits needs scikit-learn: pip install 'rlrun[diffusion]'") \
            from None
    return load_digits


def _digits() -> tuple[np.ndarray, np.ndarray]:
    d = _digits_loader()()
    return d.images[:, None].astype(np.float32) / 16.0, d.target


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"),
                 stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"env.path={folder}: no {stem} or {stem}.gz there (the IDX files of"
                    " MNIST / Fashion-MNIST, as distributed; nothing is downloaded)")


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not) of unsigned bytes as an array; malformed -> DataError."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read it ({e}); expected an IDX file, gzipped or not")\
            from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise DataError(f"{path}: not an IDX file of unsigned bytes (it should start with"
                        " bytes 00 00 08 <ndim>), e.g. MNIST's train-images-idx3-ubyte")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)):
        raise DataError(f"{path}: its header promises {'x'.join(map(str, dims))} bytes of data"
                        f" but it holds {len(data) - offset}: the file is truncated or corrupt")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def _idx_pair(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    if not folder.is_dir():
        raise DataError(f"env.path={folder} is not a folder; expected one holding"
                        f" {IDX_FILES['images']}[.gz] and {IDX_FILES['labels']}[.gz]")
    images = read_idx(_find(folder, IDX_FILES["images"]))
    labels = read_idx(_find(folder, IDX_FILES["labels"]))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"env.path={folder}: expected images (N, H, W) and labels (N,), got"
                        f" {images.shape} and {labels.shape}")
    return images[:, None].astype(np.float32) / 255.0, labels.astype(np.int64)


def _image_files(folder: Path) -> list[tuple[Path, int]]:
    """(file, class) of the images directly in `folder` (class -1: no labels) or in one
    sub-folder per class (classes numbered in sorted order)."""
    if not folder.is_dir():
        raise DataError(f"env.path={folder} is not a folder; expected a folder of images"
                        f" ({', '.join(IMAGE_EXTS)}), optionally one sub-folder per class")
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    groups = [(i, sorted(f for f in c.iterdir() if f.suffix.lower() in IMAGE_EXTS))
              for i, c in enumerate(classes)]
    groups = [(i, files) for i, files in groups if files]
    if groups:
        return [(f, i) for i, fs in groups for f in fs]
    flat = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_EXTS)
    if not flat:
        raise DataError(f"env.path={folder} holds no images ({', '.join(IMAGE_EXTS)}),"
                        " neither directly nor in class sub-folders")
    return [(f, -1) for f in flat]


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError("env=image_folder needs Pillow: pip install 'rlrun[diffusion]'") \
            from None
    return Image


def _folder(folder: Path, cfg: ImageDataConfig) -> tuple[np.ndarray, np.ndarray | None]:
    """The images of `_image_files`, decoded, and their labels (None without classes)."""
    files = _image_files(folder)
    Image = _pillow()
    mode, out, labels = ("L" if cfg.channels == 1 else "RGB"), [], []
    for f, label in files:
        try:
            with Image.open(f) as im:
                im = im.convert(mode)
                if cfg.fit == "resize":
                    side = min(im.size)
                    left, top = (im.width - side) // 2, (im.height - side) // 2
                    im = im.crop((left, top, left + side, top + side)).resize(
                        (cfg.size, cfg.size), Image.Resampling.BILINEAR)
                arr = np.asarray(im, dtype=np.float32) / 255.0
        except OSError as e:
            raise DataError(f"{f}: not a readable image ({e})") from None
        out.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
        labels.append(label)
    shapes = {a.shape for a in out}
    if len(shapes) > 1:
        raise DataError(f"env.path={folder}: images of different sizes {sorted(shapes)[:3]}:"
                        " use env.fit=resize")
    return np.stack(out), (np.asarray(labels) if labels[0] >= 0 else None)

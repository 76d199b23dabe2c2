"""Datasets as in-memory uint8 tensors, the train/validation split, and preprocessing.

Supported: Fashion-MNIST (IDX files: Debian's package, `--data-dir`, or a download from
the canonical source when online), CIFAR-10 (python or binary batches), and an
image-folder layout `<dir>/{train,test}/<class>/<image>`. No torchvision.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import struct
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hwofa.common.errors import UserError
from hwofa.common.files import hwofa_home
from supernet._cifar import load_cifar10

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
FASHION_MNIST_FILES = {"train_x": "train-images-idx3-ubyte", "train_y": "train-labels-idx1-ubyte",
                       "test_x": "t10k-images-idx3-ubyte", "test_y": "t10k-labels-idx1-ubyte"}
DATASETS = ("fashion-mnist", "cifar10", "imagefolder")


@dataclass
class Dataset:
    """Images as uint8 [N, C, H, W]; labels as int64 [N]."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    _sha256: str | None = field(default=None, repr=False, compare=False)

    def fingerprint(self) -> str:
        """sha256 over the images and labels of both splits: what a trained supernet depends on."""
        if self._sha256 is None:
            h = hashlib.sha256()
            for t in (self.train_x, self.train_y, self.test_x, self.test_y):
                h.update(str(tuple(t.shape)).encode())
                h.update(t.contiguous().numpy().tobytes())
            self._sha256 = h.hexdigest()
        return self._sha256

    def mean_std(self) -> tuple[list[float], list[float]]:
        x = self.train_x.float() / 255.0
        return x.mean((0, 2, 3)).tolist(), x.std((0, 2, 3)).tolist()


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, download: bool = True,
                 image_size: int | None = None, grayscale: bool | None = None) -> Dataset:
    """Load a dataset by name; `data_dir` overrides where it is looked for. `image_size` and `grayscale`
    apply to an image folder only; by default they follow from its images (see `_image_folder`)."""
    if name == "fashion-mnist":
        return _fashion_mnist(data_dir, download)
    if name == "cifar10":
        if data_dir is None:
            raise UserError("cifar10: pass --data-dir pointing at 'cifar-10-batches-py' (or its parent); "
                            "hwofa does not download CIFAR-10.")
        tx, ty, vx, vy, classes = load_cifar10(Path(data_dir))
        return Dataset("cifar10", tx, ty, vx, vy, classes)
    if name == "imagefolder":
        if data_dir is None:
            raise UserError("imagefolder: pass --data-dir with train/<class>/ and test/<class>/ folders.")
        return _image_folder(Path(data_dir), image_size, grayscale)
    raise UserError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}.")


def train_val_split(n: int, val_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Deterministic split of the training set: (train indices, validation indices)."""
    if not 0 < val_size < n:
        raise UserError(f"validation size {val_size} must lie between 0 and the training set size {n}.")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[val_size:].sort().values, perm[:val_size].sort().values


def preprocess(images: torch.Tensor, resolution: int, mean: list[float], std: list[float]) -> torch.Tensor:
    """uint8 [N,C,H,W] -> model input: scale to [0,1], bilinear resize (antialiased), normalise.

    Exactly what model.json's `preprocess` block tells a user to do.
    """
    x = images.float() / 255.0
    if x.shape[-1] != resolution or x.shape[-2] != resolution:
        x = F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                          antialias=True)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def augment(images: torch.Tensor, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """Random crop after zero padding and random horizontal flip, on a uint8 batch."""
    return apply_augment(images, augment_params(len(images), gen, pad), pad)


def augment_params(n: int, gen: torch.Generator, pad: int = 2) -> torch.Tensor:
    """The random choices of `augment` for a batch of n: [n, 3] rows (dx, dy, flip). Drawn for a whole
    global batch so that every data-parallel rank can apply its shard's rows."""
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    flip = torch.rand(n, generator=gen) < 0.5
    return torch.stack([dx, dy, flip.long()], 1)


def apply_augment(images: torch.Tensor, params: torch.Tensor, pad: int = 2) -> torch.Tensor:
    n, _, h, w = images.shape
    dx, dy, flip = params[:, 0], params[:, 1], params[:, 2].bool()
    padded = F.pad(images, (pad, pad, pad, pad))
    rows = (dy.view(n, 1) + torch.arange(h).view(1, h))  # [n, h]
    cols = (dx.view(n, 1) + torch.arange(w).view(1, w))  # [n, w]
    idx_n = torch.arange(n).view(n, 1, 1)
    out = padded.permute(0, 2, 3, 1)[idx_n, rows.view(n, h, 1), cols.view(n, 1, w)].permute(0, 3, 1, 2)
    out[flip] = out[flip].flip(-1)
    return out.contiguous()


# ---- Fashion-MNIST ----------------------------------------------------------
def _fashion_mnist(data_dir: str | os.PathLike | None, download: bool) -> Dataset:
    cache = hwofa_home() / "data" / "fashion-mnist"
    candidates = [Path(data_dir)] if data_dir is not None else [DEBIAN_FASHION_MNIST, cache]
    for root in candidates:
        if all(_idx_path(root, f) for f in FASHION_MNIST_FILES.values()):
            return _read_fashion_mnist(root)
    if data_dir is not None:
        raise UserError(f"fashion-mnist: '{data_dir}' does not hold the four IDX files "
                        f"({', '.join(FASHION_MNIST_FILES.values())}, optionally .gz).")
    if not download:
        raise UserError("fashion-mnist not found: install Debian's 'dataset-fashion-mnist' package, pass "
                        "--data-dir, or allow the download.")
    _download_fashion_mnist(cache)
    return _read_fashion_mnist(cache)


def _idx_path(root: Path, stem: str) -> Path | None:
    for p in (root / stem, root / f"{stem}.gz"):
        if p.is_file():
            return p
    return None


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("not an unsigned-byte IDX file")
        shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
        return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise UserError(f"could not read IDX file '{path}': {exc}. Re-download or reinstall it.") from exc


def _read_fashion_mnist(root: Path) -> Dataset:
    arr = {k: _read_idx(_idx_path(root, v)) for k, v in FASHION_MNIST_FILES.items()}
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
    def img(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.copy()).unsqueeze(1)
    def lab(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a.astype(np.int64))
    return Dataset("fashion-mnist", img(arr["train_x"]), lab(arr["train_y"]), img(arr["test_x"]),
                   lab(arr["test_y"]), classes)


def _download_fashion_mnist(dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for stem in FASHION_MNIST_FILES.values():
        target = dest / f"{stem}.gz"
        if target.is_file():
            continue
        url = f"{FASHION_MNIST_URL}{stem}.gz"
        log.info("downloading %s", url)
        tmp = target.with_suffix(".gz.part")
        try:
            with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
                f.write(r.read())
        except OSError as exc:
            raise UserError(f"fashion-mnist: download of {url} failed ({exc}); install Debian's "
                            "'dataset-fashion-mnist' package or pass --data-dir.") from exc
        os.replace(tmp, target)


# ---- image folder -------------------------------------------------------------
MAX_FOLDER_SIZE = 256
GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


def _image_folder(root: Path, size: int | None, grayscale: bool | None) -> Dataset:
    """Without `size`/`grayscale` both follow from the folder alone (so every stage that reloads the data by
    name and folder gets the same tensors): images are resized to S x S, S = the largest shorter side among
    them (at most 256), and kept RGB unless every image is grayscale."""
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir()) if (root / "train").is_dir() else []
    if not classes:
        raise UserError(f"imagefolder: '{root}/train' has no class folders; expected "
                        f"{root}/train/<class>/<image> and {root}/test/<class>/<image>.")
    files = {split: [(p, label) for label, cls in enumerate(classes) for p in sorted((root / split / cls).glob("*"))]
             for split in ("train", "test")}
    for split, items in files.items():
        if not items:
            raise UserError(f"imagefolder: no images under '{root / split}'.")
    if size is None or grayscale is None:
        sizes, modes = zip(*(_probe(p) for items in files.values() for p, _ in items), strict=True)
        size = size or min(MAX_FOLDER_SIZE, max(min(wh) for wh in sizes))
        grayscale = all(m in GRAY_MODES for m in modes) if grayscale is None else grayscale
    splits = {}
    for split, items in files.items():
        xs = [_read_image(p, size, grayscale) for p, _ in items]
        splits[split] = (torch.from_numpy(np.stack(xs)), torch.tensor([y for _, y in items], dtype=torch.int64))
    return Dataset("imagefolder", *splits["train"], *splits["test"], classes)


def _probe(path: Path) -> tuple[tuple[int, int], str]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size, im.mode
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"imagefolder: cannot read image '{path}': {exc}.") from exc


def _read_image(path: Path, size: int, grayscale: bool) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            a = np.asarray(im.convert("L" if grayscale else "RGB").resize((size, size), Image.BILINEAR),
                           dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"imagefolder: cannot read image '{path}': {exc}.") from exc
    return a[None] if a.ndim == 2 else a.transpose(2, 0, 1)

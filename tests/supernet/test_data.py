import gzip
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from hwofa.common import UserError
from supernet import load_dataset, preprocess, train_val_split
from supernet.data import apply_augment, augment, augment_params


def _write_idx(path, arr, gz=True):
    header = struct.pack(">HBB", 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = header + arr.astype(np.uint8).tobytes()
    if gz:
        with gzip.open(str(path) + ".gz", "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def test_fashion_mnist_from_data_dir(tmp_path):
    rng = np.random.default_rng(0)
    _write_idx(tmp_path / "train-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28)))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", rng.integers(0, 10, (20,)), gz=False)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 255, (5, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", rng.integers(0, 10, (5,)))
    ds = load_dataset("fashion-mnist", tmp_path)
    assert ds.train_x.shape == (20, 1, 28, 28) and ds.train_x.dtype == torch.uint8
    assert ds.test_y.shape == (5,) and ds.test_y.dtype == torch.int64


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(UserError, match="does not hold the four IDX files"):
        load_dataset("fashion-mnist", tmp_path)
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (tmp_path / stem).write_bytes(b"\x00\x00\x0d\x01garbage")
    with pytest.raises(UserError, match="could not read IDX"):
        load_dataset("fashion-mnist", tmp_path)
    with pytest.raises(UserError, match="unknown dataset"):
        load_dataset("mnist-ish")


def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    labels = [int(v) for v in rng.integers(0, 10, n)]
    return {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8), b"labels": labels}


def test_cifar10_python_format(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for i in range(1, 6):
        (root / f"data_batch_{i}").write_bytes(pickle.dumps(_cifar_batch(4, i)))
    (root / "test_batch").write_bytes(pickle.dumps(_cifar_batch(3, 9)))
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_x.shape == (20, 3, 32, 32) and ds.test_x.shape == (3, 3, 32, 32)
    first = _cifar_batch(4, 1)
    assert np.array_equal(ds.train_x[0].numpy().reshape(-1), first[b"data"][0])


def test_cifar10_binary_format(tmp_path):
    root = tmp_path / "cifar-10-batches-bin"
    root.mkdir()
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        rows = np.concatenate([rng.integers(0, 10, (2, 1)), rng.integers(0, 255, (2, 3072))], 1).astype(np.uint8)
        (root / name).write_bytes(rows.tobytes())
    ds = load_dataset("cifar10", tmp_path)
    assert ds.train_x.shape == (10, 3, 32, 32) and ds.test_y.shape == (2,)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_cifar10_rejects_code_in_pickles(tmp_path):
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        (root / name).write_bytes(pickle.dumps({b"data": _Evil(), b"labels": []}))
    with pytest.raises(UserError, match="not allowed"):
        load_dataset("cifar10", tmp_path)


def test_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 3), ("test", 2)):
        for cls in ("cat", "dog"):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)).save(d / f"{i}.png")
    ds = load_dataset("imagefolder", tmp_path, image_size=28, grayscale=True)
    assert ds.classes == ["cat", "dog"]
    assert ds.train_x.shape == (6, 1, 28, 28) and ds.test_x.shape == (4, 1, 28, 28)
    assert ds.train_y.tolist() == [0, 0, 0, 1, 1, 1]
    auto = load_dataset("imagefolder", tmp_path)  # RGB images, 40x30: kept RGB at the largest shorter side
    assert auto.train_x.shape == (6, 3, 30, 30)
    Image.fromarray(rng.integers(0, 255, (50, 60), dtype=np.uint8)).save(tmp_path / "test" / "dog" / "gray.png")
    assert load_dataset("imagefolder", tmp_path).test_x.shape == (5, 3, 50, 50)  # one RGB image makes it RGB
    (tmp_path / "train" / "cat" / "broken.png").write_bytes(b"not a png")
    with pytest.raises(UserError, match="cannot read image"):
        load_dataset("imagefolder", tmp_path)


def test_split_is_deterministic_and_disjoint():
    a_train, a_val = train_val_split(1000, 100, seed=3)
    b_train, b_val = train_val_split(1000, 100, seed=3)
    assert torch.equal(a_val, b_val) and len(a_val) == 100 and len(a_train) == 900
    assert not set(a_train.tolist()) & set(a_val.tolist())
    with pytest.raises(UserError):
        train_val_split(10, 10)


def test_preprocess_matches_contract():
    imgs = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    x = preprocess(imgs, 28, [0.5], [0.25])
    torch.testing.assert_close(x, (imgs.float() / 255 - 0.5) / 0.25)
    assert preprocess(imgs, 20, [0.5], [0.25]).shape == (2, 1, 20, 20)


def test_augment_keeps_shape_and_content_range():
    imgs = torch.randint(0, 256, (16, 1, 28, 28), dtype=torch.uint8)
    out = augment(imgs, torch.Generator().manual_seed(0))
    assert out.shape == imgs.shape and out.dtype == torch.uint8
    assert not torch.equal(out, imgs)
    same = augment(imgs, torch.Generator().manual_seed(0))
    assert torch.equal(out, same)
    params = augment_params(16, torch.Generator().manual_seed(0))  # a shard applies its rows of the batch's draw
    assert torch.equal(apply_augment(imgs[8:], params[8:]), out[8:])

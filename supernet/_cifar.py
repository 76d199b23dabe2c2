"""CIFAR-10 readers: the binary batches, and the python (pickled) batches through an
unpickler that only admits the few numpy/builtin globals those files contain, so a
crafted file cannot run code."""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import torch

from hwofa.common.errors import UserError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
            ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
            ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
            ("collections", "OrderedDict"), ("builtins", "list"), ("builtins", "dict")}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str):  # noqa: ANN201 - pickle API
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR batch")
        return super().find_class(module, name)


def _python_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _RestrictedUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except (OSError, pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as exc:
        raise UserError(f"cifar10: cannot read python batch '{path}': {exc}.") from exc
    return data, labels


def _binary_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % 3073:
        raise UserError(f"cifar10: '{path}' is not a CIFAR-10 binary batch (size {raw.size} is not a "
                        "multiple of 3073).")
    rows = raw.reshape(-1, 3073)
    return rows[:, 1:].reshape(-1, 3, 32, 32), rows[:, 0].astype(np.int64)


def load_cifar10(root: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    """Read CIFAR-10 from `root` (or its 'cifar-10-batches-py' / 'cifar-10-batches-bin' child)."""
    for sub, reader, train_names, test_name in (
            ("cifar-10-batches-py", _python_batch, [f"data_batch_{i}" for i in range(1, 6)], "test_batch"),
            ("cifar-10-batches-bin", _binary_batch, [f"data_batch_{i}.bin" for i in range(1, 6)],
             "test_batch.bin")):
        for base in (root / sub, root):
            if all((base / n).is_file() for n in [*train_names, test_name]):
                parts = [reader(base / n) for n in train_names]
                tx = np.concatenate([p[0] for p in parts])
                ty = np.concatenate([p[1] for p in parts])
                vx, vy = reader(base / test_name)
                return (torch.from_numpy(tx.copy()), torch.from_numpy(ty), torch.from_numpy(vx.copy()),
                        torch.from_numpy(vy), list(CLASSES))
    raise UserError(f"cifar10: no complete CIFAR-10 batches under '{root}' (expected data_batch_1..5 and "
                    "test_batch, python or .bin format).")

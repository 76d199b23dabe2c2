"""Content-addressed cache of export verifications: `$HWOFA_HOME/verify/<key>/`.

The key is a sha256 over everything the checks depend on (supernet weights, arch, dataset, BN
calibration settings, precision and quantization settings with their calibration images, code and
format version, opset, torch/onnx/onnxruntime versions). An entry holds the fp32 ONNX bytes, the
deployed model's bytes (int8), the results, the parity inputs/logits and the fp32 model's test
predictions; it is written whole into a temp
folder and renamed into place. Every read re-checks the stored hashes; an entry that fails any
check is ignored (and rebuilt), never trusted.
"""

from __future__ import annotations

import io
import json
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from export.bundle import replace_dir
from export.checks import Check
from export.verify import Deployed, Verification
from hwofa.common import UserError, hwofa_home, sha256_bytes
from profiler import OPSET
from supernet import ArchSpec, SupernetMeta
from supernet.checkpoint import code_version

log = logging.getLogger(__name__)
FORMAT = "hwofa-verify/2"


def key_inputs(meta: SupernetMeta, arch: ArchSpec, dataset_sha256: str,
               precision: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a verification depends on; `precision`: the profile's precision and, for int8, the quantization
    settings and calibration images (`Exporter.precision_key`); None means fp32."""
    import onnxruntime

    ds = meta.dataset
    return {"format": FORMAT, "code_version": code_version(), "supernet_sha256": meta.weights_sha256,
            "arch": arch.key(), "dataset_sha256": dataset_sha256,
            "dataset": {"name": ds.name, "mean": list(ds.mean), "std": list(ds.std), "val_size": ds.val_size,
                        "split_seed": ds.split_seed},
            "bn_calib_images": meta.bn_calib_images, "opset": OPSET,
            "torch": torch.__version__, "onnx": onnx.__version__,
            "onnxruntime": onnxruntime.__version__, "precision": precision or {"precision": "fp32"}}


def key_of(inputs: dict[str, Any]) -> str:
    return sha256_bytes(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode())


def cache_root() -> Path:
    return hwofa_home() / "verify"


def load(key: str, inputs: dict[str, Any]) -> Verification | None:
    """The cached verification under `key`, or None when absent or not to be trusted."""
    folder = cache_root() / key
    if not folder.is_dir():
        return None
    try:
        return _read(folder, key, inputs)
    except Exception as exc:  # noqa: BLE001 - any defect means: ignore the entry and verify again
        log.warning("ignoring the verification cache entry %s (%s: %s); verifying again",
                    folder, type(exc).__name__, exc)
        return None


def _read(folder: Path, key: str, inputs: dict[str, Any]) -> Verification:
    meta = json.loads((folder / "verify.json").read_text())
    if meta.get("format") != FORMAT or meta.get("key") != key or meta.get("inputs") != inputs:
        raise ValueError("format, key or inputs differ")
    model_bytes = (folder / "model.onnx").read_bytes()
    arrays = (folder / "parity.npz").read_bytes()
    dep = meta["deployed"]
    deployed_bytes = (folder / "deployed.onnx").read_bytes() if dep["sha256"] else model_bytes
    for what, blob, want in (("onnx", model_bytes, meta["onnx_sha256"]), ("parity", arrays, meta["parity_sha256"]),
                             ("deployed", deployed_bytes, dep["sha256"] or meta["onnx_sha256"])):
        if sha256_bytes(blob) != want:
            raise ValueError(f"the stored {what} bytes do not match their sha256")
    with np.load(io.BytesIO(arrays), allow_pickle=False) as npz:
        x, ref, preds = npz["x"], npz["ref"], npz["preds"]
    if x.dtype != np.float32 or x.ndim != 4 or ref.ndim != 2 or len(x) != len(ref) or len(x) == 0:
        raise ValueError("parity arrays have the wrong shape")
    if preds.ndim != 1 or len(preds) != int(meta["images"]):
        raise ValueError("the stored test predictions have the wrong shape")
    checks = tuple(Check.from_dict(c) for c in meta["checks"])
    return Verification(model_bytes, float(meta["top1_torch"]), float(meta["top1_onnx"]), int(meta["images"]),
                        float(meta["parity_max_abs_diff"]), checks, x, ref,
                        Deployed(str(dep["precision"]), deployed_bytes, dict(dep["info"])), preds,
                        meta["quantization"], cached=True, key=key)


def store(v: Verification, inputs: dict[str, Any]) -> None:
    """Write the entry atomically; a cache that cannot be written only costs time next run."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{v.key[:16]}.tmp-"))
    except OSError as exc:
        log.warning("cannot write the verification cache under %s (%s)", root, exc)
        return
    try:
        buf = io.BytesIO()
        np.savez(buf, x=v.parity_x, ref=v.parity_ref, preds=v.preds_fp32)
        arrays = buf.getvalue()
        (tmp / "model.onnx").write_bytes(v.model_bytes)
        (tmp / "parity.npz").write_bytes(arrays)
        dep = v.deployed
        if dep.model_bytes != v.model_bytes:
            (tmp / "deployed.onnx").write_bytes(dep.model_bytes)
        meta = {"format": FORMAT, "key": v.key, "inputs": inputs,
                "onnx_sha256": sha256_bytes(v.model_bytes), "parity_sha256": sha256_bytes(arrays),
                "deployed": {"precision": dep.precision, "info": dep.info,
                             "sha256": sha256_bytes(dep.model_bytes) if dep.model_bytes != v.model_bytes else None},
                "quantization": v.quantization,
                "top1_torch": v.top1_torch, "top1_onnx": v.top1_onnx, "images": v.images,
                "parity_max_abs_diff": v.parity_max_abs_diff, "checks": [c.to_dict() for c in v.checks]}
        (tmp / "verify.json").write_text(json.dumps(meta, indent=1) + "\n")  # written last: marks the entry whole
        replace_dir(tmp, root / v.key)
    except (OSError, UserError) as exc:
        log.warning("cannot write the verification cache entry %s (%s)", root / v.key, exc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

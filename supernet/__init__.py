"""Elastic supernet: search space, elastic ops, training, data, BN calibration."""

from supernet.bn import calibrated_subnet, calibration_images, predict_logits, recalibrate_bn, top1
from supernet.checkpoint import SHIPPED_RUN, load_supernet, load_tensors, save_supernet, save_tensors
from supernet.data import Dataset, load_dataset, preprocess, train_val_split
from supernet.errors import UserError
from supernet.files import (
    NUMBER,
    atomic_write_bytes,
    atomic_write_json,
    check_readable_file,
    hwofa_home,
    json_type,
    probe_writable,
    read_json,
    require_fields,
    sha256_file,
)
from supernet.layers import Head, MBBlock, Stem, SubNet, block_for
from supernet.network import Supernet
from supernet.recipe import Recipe, load_recipe
from supernet.space import ArchSpec, BlockSpec, SearchSpace

__all__ = [
    "SHIPPED_RUN", "ArchSpec", "BlockSpec", "Dataset", "Head", "MBBlock", "Recipe", "SearchSpace", "Stem", "SubNet",
    "Supernet", "UserError", "atomic_write_bytes", "atomic_write_json", "block_for", "calibrated_subnet",
    "calibration_images", "load_dataset", "load_recipe", "load_supernet", "load_tensors", "predict_logits",
    "preprocess", "read_json", "require_fields", "NUMBER", "recalibrate_bn", "save_supernet", "save_tensors",
    "sha256_file", "top1", "check_readable_file", "hwofa_home", "json_type", "probe_writable",
    "train_val_split",
]

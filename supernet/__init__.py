"""Elastic supernet: search space, elastic ops, training, data, BN calibration."""

from supernet.bn import calibrated_subnet, calibration_images, predict_logits, recalibrate_bn, top1
from supernet.checkpoint import load_supernet, load_tensors, save_supernet, save_tensors
from supernet.data import Dataset, load_dataset, preprocess, train_val_split
from supernet.layers import Head, MBBlock, Stem, SubNet, block_for
from supernet.meta import DatasetInfo, SupernetMeta
from supernet.network import Supernet
from supernet.recipe import Recipe, load_recipe
from supernet.space import ArchSpec, BlockSpec, SearchSpace

__all__ = [
    "ArchSpec", "BlockSpec", "Dataset", "DatasetInfo", "Head", "MBBlock", "Recipe", "SearchSpace", "Stem", "SubNet",
    "Supernet", "SupernetMeta", "block_for", "calibrated_subnet", "calibration_images", "load_dataset", "load_recipe",
    "load_supernet", "load_tensors", "predict_logits", "preprocess", "recalibrate_bn", "save_supernet",
    "save_tensors", "top1", "train_val_split",
]

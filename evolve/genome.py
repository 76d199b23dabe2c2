"""Genome <-> ArchSpec, and the arch features the accuracy predictor reads.

Genome: flat list of choice indices, [resolution, then per stage: depth, then per block
slot (max depth of them): kernel size, expand ratio]. Every dimension's choices are sorted
ascending, so a smaller index is always a smaller (cheaper) choice. Genes of slots beyond a
stage's depth are kept but inactive.
"""

from __future__ import annotations

import numpy as np

from supernet import ArchSpec, BlockSpec, SearchSpace


def gene_ranges(space: SearchSpace) -> list[int]:
    per_stage = [len(space.depths)] + [len(space.kernel_sizes), len(space.expand_ratios)] * space.max_depth
    return [len(space.resolutions)] + per_stage * space.num_stages


def _stage_offset(space: SearchSpace, stage: int) -> int:
    return 1 + stage * (1 + 2 * space.max_depth)


def encode(space: SearchSpace, arch: ArchSpec) -> list[int]:
    genome = [space.resolutions.index(arch.resolution)]
    for stage in arch.stages:
        genome.append(space.depths.index(len(stage)))
        for slot in range(space.max_depth):
            block = stage[slot] if slot < len(stage) else stage[-1]  # inactive slots copy the last block
            genome += [space.kernel_sizes.index(block.kernel_size), space.expand_ratios.index(block.expand_ratio)]
    return genome


def decode(space: SearchSpace, genome: list[int]) -> ArchSpec:
    stages = []
    for s in range(space.num_stages):
        o = _stage_offset(space, s)
        depth = space.depths[genome[o]]
        stages.append(tuple(BlockSpec(space.kernel_sizes[genome[o + 1 + 2 * b]],
                                      space.expand_ratios[genome[o + 2 + 2 * b]]) for b in range(depth)))
    return ArchSpec(space.resolutions[genome[0]], tuple(stages))


def active_genes(space: SearchSpace, genome: list[int]) -> list[int]:
    """Indices of genes that change the decoded arch."""
    idx = [0]
    for s in range(space.num_stages):
        o = _stage_offset(space, s)
        idx.append(o)
        for b in range(space.depths[genome[o]]):
            idx += [o + 1 + 2 * b, o + 2 + 2 * b]
    return idx


FEATURE_SETS = ("onehot", "slots")


def feature_size(space: SearchSpace, kind: str = "onehot") -> int:
    if kind == "slots":
        return 1 + space.num_stages * (1 + 2 * space.max_depth)
    per_slot = len(space.kernel_sizes) + len(space.expand_ratios)
    return len(space.resolutions) + space.num_stages * space.max_depth * per_slot


def features(space: SearchSpace, archs: list[ArchSpec], kind: str = "onehot") -> np.ndarray:
    """The predictor's input rows, one of FEATURE_SETS:
    - onehot: one-hot resolution, then per block slot one-hot kernel and expand (zeros where inactive);
    - slots: the resolution, per stage its depth then per block slot kernel_size and expand_ratio as
      numbers (zeros where inactive)."""
    if kind not in FEATURE_SETS:
        raise ValueError(f"unknown feature set {kind!r}; known: {FEATURE_SETS}")
    out = np.zeros((len(archs), feature_size(space, kind)), np.float32)
    for i, arch in enumerate(archs):
        (_slots if kind == "slots" else _onehot)(space, arch, out[i])
    return out


def _onehot(space: SearchSpace, arch: ArchSpec, row: np.ndarray) -> None:
    nk, ne = len(space.kernel_sizes), len(space.expand_ratios)
    row[space.resolutions.index(arch.resolution)] = 1
    base = len(space.resolutions)
    for s, stage in enumerate(arch.stages):
        for b, block in enumerate(stage):
            o = base + (s * space.max_depth + b) * (nk + ne)
            row[o + space.kernel_sizes.index(block.kernel_size)] = 1
            row[o + nk + space.expand_ratios.index(block.expand_ratio)] = 1


def _slots(space: SearchSpace, arch: ArchSpec, row: np.ndarray) -> None:
    row[0] = arch.resolution
    for s, stage in enumerate(arch.stages):
        o = _stage_offset(space, s)
        row[o] = len(stage)
        for b, block in enumerate(stage):
            row[o + 1 + 2 * b], row[o + 2 + 2 * b] = block.kernel_size, block.expand_ratio

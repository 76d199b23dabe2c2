"""The search's hot path: genome layout, latency straight from genomes, batched cached accuracy.

A stage's active genes are one contiguous slice of the genome ([depth, k0, e0, k1, e1, ...] up
to its depth), so an arch's identity (`GenomeLayout.key`) is a few slices, and neither latency
nor predictor features need `decode`. A LatencyTable's `gene_costs()` makes the latency a sum
of list lookups, and the latency after lowering one gene a one-term update; any other latency
model is asked through `predict(decode(...))`.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from evolve.genome import FEATURE_SETS, decode, feature_size, gene_ranges
from supernet import ArchSpec, BlockSpec, SearchSpace

Key = tuple[int, ...]


class LatencyModel(Protocol):
    def predict(self, arch: ArchSpec) -> float: ...

    def min_latency(self) -> tuple[float, ArchSpec]: ...


class AccuracyModel(Protocol):
    def predict(self, archs: list[ArchSpec]) -> Any: ...


class GenomeLayout:
    """Where each stage's genes sit, and which of them are active at each depth."""

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.ranges = gene_ranges(space)
        self.depths = list(space.depths)
        self.offsets = [1 + s * (1 + 2 * space.max_depth) for s in range(space.num_stages)]
        self.stage_of = [-1] + [s for s in range(space.num_stages) for _ in range(1 + 2 * space.max_depth)]
        self.max_steps = sum(self.ranges)  # a bound on how often genes can be lowered one step

    def key(self, g: list[int]) -> Key:
        """The genes that decide the arch (two genomes with one key decode to one arch)."""
        out = g[:1]
        for o in self.offsets:
            out += g[o:o + 1 + 2 * self.depths[g[o]]]
        return tuple(out)

    def arch(self, key: Key) -> ArchSpec:
        """The arch a key stands for."""
        sp, i, stages = self.space, 1, []
        for _ in self.offsets:
            depth = self.depths[key[i]]
            stages.append(tuple(BlockSpec(sp.kernel_sizes[key[i + 1 + 2 * b]], sp.expand_ratios[key[i + 2 + 2 * b]])
                                for b in range(depth)))
            i += 1 + 2 * depth
        return ArchSpec(sp.resolutions[key[0]], tuple(stages))

    def active(self, g: list[int]) -> list[int]:
        out = [0]
        for o in self.offsets:
            out += range(o, o + 1 + 2 * self.depths[g[o]])
        return out

    def features(self, genomes: list[list[int]], kind: str = "onehot") -> np.ndarray:
        """`genome.features` of the decoded archs, computed from the genomes in one go."""
        if kind not in FEATURE_SETS:
            raise ValueError(f"unknown feature set {kind!r}; known: {FEATURE_SETS}")
        g = np.asarray(genomes, dtype=np.int64).reshape(len(genomes), len(self.ranges))
        md, offs = self.space.max_depth, np.asarray(self.offsets)
        depth = np.asarray(self.depths)[g[:, offs]]                                       # (n, stages)
        active = (np.arange(md)[None, None, :] < depth[:, :, None]).reshape(len(g), -1)  # (n, stages * md)
        k_gene = (offs[:, None] + 1 + 2 * np.arange(md)[None, :]).reshape(-1)
        return (self._slots if kind == "slots" else self._onehot)(g, depth, active, k_gene)

    def _onehot(self, g: np.ndarray, depth: np.ndarray, active: np.ndarray, k_gene: np.ndarray) -> np.ndarray:
        sp = self.space
        nk, ne = len(sp.kernel_sizes), len(sp.expand_ratios)
        rows = np.arange(len(g))[:, None]
        out = np.zeros((len(g), feature_size(sp)), np.float32)
        out[rows[:, 0], g[:, 0]] = 1
        col = len(sp.resolutions) + np.arange(sp.num_stages * sp.max_depth) * (nk + ne)
        out[rows, col + g[:, k_gene]] = active
        out[rows, col + nk + g[:, k_gene + 1]] = active
        return out

    def _slots(self, g: np.ndarray, depth: np.ndarray, active: np.ndarray, k_gene: np.ndarray) -> np.ndarray:
        """The slots features sit where their genes sit: values in place of choice indices, zero where inactive."""
        sp = self.space
        out = np.zeros(g.shape, np.float32)
        out[:, 0] = np.asarray(sp.resolutions)[g[:, 0]]
        out[:, self.offsets] = depth
        out[:, k_gene] = np.asarray(sp.kernel_sizes)[g[:, k_gene]] * active
        out[:, k_gene + 1] = np.asarray(sp.expand_ratios)[g[:, k_gene + 1]] * active
        return out


class GenomeLatency:
    """Predicted latency of genomes for any latency model: `predict(decode(...))`."""

    def __init__(self, layout: GenomeLayout, model: LatencyModel) -> None:
        self.layout, self.model = layout, model

    def of(self, g: list[int]) -> float:
        return float(self.model.predict(decode(self.layout.space, g)))

    def of_many(self, genomes: list[list[int]] | np.ndarray) -> list[float]:
        return [self.of(list(g)) for g in genomes]

    def lowered(self, g: list[int], i: int, lat: float) -> float:
        """The latency once gene `i` is one step lower (`g` is left as it was; `lat` is its latency)."""
        g[i] -= 1
        try:
            return self.of(g)
        finally:
            g[i] += 1


class TableLatency(GenomeLatency):
    """A LatencyTable's prediction from its `gene_costs()`: list lookups, one-term updates."""

    def __init__(self, layout: GenomeLayout, model: Any) -> None:
        super().__init__(layout, model)
        costs = model.gene_costs()
        self.base = list(costs.base)
        self.block = [[[list(pos) for pos in stage] for stage in res] for res in costs.block]
        self.ne = len(layout.space.expand_ratios)
        md = layout.space.max_depth  # for of_many: one column per block slot, in `of`'s order
        self.costs, self.bases = np.asarray(costs.block), np.asarray(costs.base)
        self.slot_stage = np.repeat(np.arange(len(layout.offsets)), md)
        self.slot_pos = np.tile(np.minimum(np.arange(md), 1), len(layout.offsets))
        self.slot_k = np.asarray([o + 1 + 2 * b for o in layout.offsets for b in range(md)])
        self.slot_b = np.tile(np.arange(md), len(layout.offsets))

    def of(self, g: list[int]) -> float:
        r, ne, depths = g[0], self.ne, self.layout.depths
        lat = self.base[r]
        for o, (first, rest) in zip(self.layout.offsets, self.block[r], strict=True):
            lat += first[g[o + 1] * ne + g[o + 2]]
            for j in range(o + 3, o + 1 + 2 * depths[g[o]], 2):
                lat += rest[g[j] * ne + g[j + 1]]
        return lat

    def of_many(self, genomes: list[list[int]] | np.ndarray) -> list[float]:
        """`of` of each genome, vectorised over genomes; the same sums in the same order, so equal to `of`."""
        if len(genomes) == 0:
            return []
        g = np.asarray(genomes, dtype=np.int64)
        r = g[:, 0]
        choice = g[:, self.slot_k] * self.ne + g[:, self.slot_k + 1]
        cost = self.costs[r[:, None], self.slot_stage, self.slot_pos, choice]
        depth = np.asarray(self.layout.depths)[g[:, np.asarray(self.layout.offsets)]][:, self.slot_stage]
        lat = self.bases[r]
        for col in range(cost.shape[1]):
            lat = lat + np.where(self.slot_b[col] < depth[:, col], cost[:, col], 0.0)
        return lat.tolist()

    def lowered(self, g: list[int], i: int, lat: float) -> float:
        if i == 0:
            return super().lowered(g, i, lat)
        s = self.layout.stage_of[i]
        o = self.layout.offsets[s]
        first, rest = self.block[g[0]][s]
        ne, depths = self.ne, self.layout.depths
        if i == o:  # one depth step down drops the stage's last blocks
            return lat - sum(rest[g[j] * ne + g[j + 1]]
                             for j in range(o + 1 + 2 * depths[g[o] - 1], o + 1 + 2 * depths[g[o]], 2))
        j = i - (i - o - 1) % 2  # the block's kernel gene
        table = first if j == o + 1 else rest
        step = ne if i == j else 1
        c = g[j] * ne + g[j + 1]
        return lat + table[c - step] - table[c]


def genome_latency(layout: GenomeLayout, model: LatencyModel) -> GenomeLatency:
    """The fast path where the model compiles to per-choice costs (a LatencyTable), else the generic one."""
    return TableLatency(layout, model) if hasattr(model, "gene_costs") else GenomeLatency(layout, model)


class AccuracyCache:
    """Predicted top-1 by arch key: each arch is predicted once, the misses of a batch in one call.
    Share one between searches on one predictor (e.g. several devices)."""

    def __init__(self, layout: GenomeLayout, model: AccuracyModel) -> None:
        self.layout, self.model = layout, model
        self.top1: dict[Key, float] = {}
        self.calls = 0

    def __call__(self, keys: list[Key], genomes: list[list[int]]) -> list[float]:
        todo = {k: g for k, g in zip(keys, genomes, strict=True) if k not in self.top1}
        if todo:
            self.calls += 1
            self.top1.update(zip(todo, self._predict(list(todo.values())), strict=True))
        return [self.top1[k] for k in keys]

    def _predict(self, genomes: list[list[int]]) -> list[float]:
        if hasattr(self.model, "predict_features"):
            kind = getattr(self.model, "feature_set", "onehot")
            out = self.model.predict_features(self.layout.features(genomes, kind))
        else:
            out = self.model.predict([decode(self.layout.space, g) for g in genomes])
        return [float(v) for v in np.asarray(out, dtype=np.float64).reshape(-1)]

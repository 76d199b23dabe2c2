"""A boosted tree ensemble as plain arrays, evaluated in numpy: no scikit-learn at run time, no pickle.

Every tree is padded to the same node count N; node i of tree t sits at t * N + i, and its children
are stored as such global indices. A leaf points both children at itself, so `depth` rounds of

    node = left[node] if x[feature[node]] <= threshold[node] else right[node]

(scikit-learn's rule) move every row to its leaf in every tree at once. `value` holds the leaf outputs
already scaled by the learning rate: prediction = base + sum over trees of value[leaf].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

ARRAYS = ("feature", "threshold", "left", "right", "value")


@dataclass(frozen=True)
class TreeEnsemble:
    base: float
    n_trees: int
    depth: int
    feature: np.ndarray    # (n_trees * N,) int64: the feature a node splits on (0 at leaves)
    threshold: np.ndarray  # float64: go left when x <= threshold
    left: np.ndarray       # int64 global node indices; a leaf's children are itself
    right: np.ndarray
    value: np.ndarray      # float64 leaf outputs times the learning rate (0 at inner nodes)
    _child: np.ndarray = field(init=False, repr=False)  # left and right interleaved: child[2 * node + go_right]

    def __post_init__(self) -> None:
        size = len(self.feature)
        if self.n_trees < 1 or size % self.n_trees or any(len(getattr(self, a)) != size for a in ARRAYS):
            raise ValueError("tree arrays of unequal length or not a whole number of trees")
        for a in ("left", "right"):
            idx = getattr(self, a)
            if idx.min() < 0 or idx.max() >= size:
                raise ValueError(f"'{a}' points outside the ensemble")
        if self.feature.min() < 0 or self.depth < 0:
            raise ValueError("negative feature index or depth")
        object.__setattr__(self, "_child", np.stack([self.left, self.right], axis=1).reshape(-1))

    @property
    def roots(self) -> np.ndarray:
        return np.arange(self.n_trees) * (len(self.feature) // self.n_trees)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or (len(x) and x.shape[1] <= int(self.feature.max())):
            raise ValueError(f"expected rows of at least {int(self.feature.max()) + 1} features, got shape {x.shape}")
        flat, row = x.reshape(-1), np.arange(len(x))[:, None] * x.shape[1]  # one flat gather per level
        node = np.broadcast_to(self.roots, (len(x), self.n_trees))
        for _ in range(self.depth):
            go_right = flat[row + self.feature[node]] > self.threshold[node]
            node = self._child[2 * node + go_right]
        return self.base + self.value[node].sum(axis=1)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {a: torch.from_numpy(np.ascontiguousarray(getattr(self, a))) for a in ARRAYS}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], base: float, n_trees: int, depth: int) -> TreeEnsemble:
        missing = [a for a in ARRAYS if a not in tensors]
        if missing:
            raise ValueError(f"missing tree arrays {missing}")
        arr = {a: tensors[a].numpy() for a in ARRAYS}
        ints = {a: arr[a].astype(np.int64) for a in ("feature", "left", "right")}
        return cls(float(base), int(n_trees), int(depth), threshold=arr["threshold"].astype(np.float64),
                   value=arr["value"].astype(np.float64), **ints)

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """From a fitted scikit-learn GradientBoostingRegressor (squared error, one output)."""
        trees = [est.tree_ for est in model.estimators_[:, 0]]
        n = max(t.node_count for t in trees)
        size = n * len(trees)
        feature, left, right = (np.zeros(size, np.int64) for _ in range(3))
        threshold, value = np.zeros(size), np.zeros(size)
        for i, t in enumerate(trees):
            o, m = i * n, t.node_count
            nodes = np.arange(o, o + n)
            leaf = np.ones(n, bool)
            leaf[:m] = t.children_left == -1
            left[o:o + n], right[o:o + n] = nodes, nodes  # leaves (and padding) loop on themselves
            inner = np.flatnonzero(~leaf)
            left[o + inner], right[o + inner] = o + t.children_left[inner], o + t.children_right[inner]
            feature[o + inner], threshold[o + inner] = t.feature[inner], t.threshold[inner]
            value[o:o + m] = np.where(leaf[:m], t.value[:, 0, 0] * model.learning_rate, 0.0)
        base = float(np.ravel(model.init_.predict(np.zeros((1, model.n_features_in_))))[0])
        depth = max(t.max_depth for t in trees)
        return cls(base, len(trees), depth, feature, threshold, left, right, value)

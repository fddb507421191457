"""Exact path-dependent TreeSHAP (Lundberg et al. 2020, the ``shap`` package's ``TreeExplainer`` with
``feature_perturbation="tree_path_dependent"``) of the champion's random forest, vectorised in numpy over every
leaf of every tree.

For one leaf ``l`` with value ``v`` the path-dependent expectation given the features in ``S`` factorises over the
``d`` distinct features ``j`` its path splits on: ``v * prod_j (o_j if j in S else z_j)``, where ``o_j`` says
whether ``x`` satisfies every split on ``j`` along the path and ``z_j`` is the share of training cover those splits
keep. The Shapley value of feature ``i`` in that product game is ``v (o_i - z_i) sum_k w_k [t^k] prod_{j != i} (z_j
+ o_j t)`` with ``w_k = k! (d-k-1)! / d!``. Writing ``w_k`` as the Beta integral ``int_0^1 s^k (1-s)^(d-k-1) ds``
turns the sum into ``int_0^1 prod_{j != i} g_j(s) ds`` with ``g_j(s) = o_j s + z_j (1 - s)``, a polynomial of
degree ``d - 1``: Gauss-Legendre quadrature with ``ceil(d / 2)`` nodes ``s_q`` (weights ``w_q``) integrates it
exactly. With ``W_q = w_q v prod_j g_j(s_q)`` (one exp of a sum of logs per node):

- a feature the row fails (``o_i = 0``, ``g_i = z_i (1 - s)``) gets ``-sum_q W_q / (1 - s_q)``, the same for every
  failed feature of the leaf;
- a satisfied one gets ``sum_q W_q (1 - z_i) / g_i(s_q)`` (a table per leaf, feature and node).

Leaves are grouped by ``d``, so each group uses its own ``ceil(d / 2)`` nodes and no padding; leaves of value 0
and trees without a split add nothing (but count in the expected value). The tables are laid out (feature, node,
leaf) so every reduction runs over contiguous leaves. A forest's value is the mean of its trees'. The contributions
plus the expected value equal the forest's probability (``hvbuyer_tests/core/test_treeshap.py``: additivity, and
equality with Shapley values enumerated from the tree itself). Measured against the ``shap`` package's C++
``TreeExplainer`` in ``scripts/bench_explain.py`` (docs/api.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from hvbuyer_assets.core.model import MISSING_SENTINEL

Leaf = tuple[list[tuple[int, float, float, float]], float]  # ([(feature, lower, upper, zero)], value)


@dataclass(frozen=True)
class Group:
    """The leaves whose paths split on ``depth`` distinct features; tables (feature, [node,] leaf)."""

    depth: int
    feature: np.ndarray  # (depth, leaves) int: the distinct features split on
    lower: np.ndarray  # (depth, leaves): x > lower ...
    upper: np.ndarray  # ... and x <= upper on every split of that feature
    log_failed: np.ndarray  # (nodes, leaves): log(w_q v prod_j g_j(s_q)) with every o_j = 0
    log_ratio: np.ndarray  # (depth, nodes, leaves): log g_j(s_q) | o_j = 1  -  log g_j(s_q) | o_j = 0
    satisfied: np.ndarray  # (depth, nodes, leaves): (1 - z_j) / g_j(s_q) with o_j = 1
    failed: np.ndarray  # (nodes,): 1 / (1 - s_q)


@dataclass(frozen=True)
class Paths:
    """Every leaf of a forest that moves a contribution, grouped by its number of distinct features."""

    groups: tuple[Group, ...]
    expected_value: float

    @property
    def depth(self) -> int:
        """The most distinct features on one path."""
        return max((g.depth for g in self.groups), default=0)


def _tree_paths(tree, scale: float) -> list[Leaf]:
    """(distinct features with (feature, lower, upper, zero), value) of each leaf of one sklearn tree."""
    left, right = tree.children_left, tree.children_right
    cover = tree.weighted_n_node_samples
    values = tree.value[:, 0, 1] / tree.value[:, 0, :].sum(axis=1)
    leaves = []
    stack: list[tuple[int, dict[int, tuple[float, float, float]]]] = [(0, {})]
    while stack:
        node, path = stack.pop()
        if left[node] == -1:
            leaves.append(([(f, lo, hi, z) for f, (lo, hi, z) in path.items()], float(values[node]) * scale))
            continue
        feature, threshold = int(tree.feature[node]), float(tree.threshold[node])
        lo, hi, z = path.get(feature, (-math.inf, math.inf, 1.0))
        for child, bounds in ((left[node], (lo, min(hi, threshold))), (right[node], (max(lo, threshold), hi))):
            share = z * cover[child] / cover[node]
            stack.append((child, {**path, feature: (*bounds, share)}))
    return leaves


def _group(leaves: list[Leaf], depth: int) -> Group:
    """The tables of leaves that all split on ``depth`` distinct features (and have a positive value)."""
    # (feature | lower | upper | zero, depth, leaves), contiguous: every row's reads run along the leaves
    feature, lower, upper, zero = np.array([path for path, _ in leaves]).transpose(2, 1, 0).copy()
    value = np.array([v for _, v in leaves])
    nodes, weights = np.polynomial.legendre.leggauss(math.ceil(depth / 2))  # exact up to degree depth - 1
    nodes, weights = (nodes + 1) / 2, weights / 2  # on [0, 1]
    s = nodes[None, :, None]
    satisfied = s + zero[:, None, :] * (1 - s)  # g_j(s_q) with o_j = 1: (depth, nodes, leaves)
    failed = zero[:, None, :] * (1 - s)  # ... with o_j = 0
    log_failed = np.log(weights)[:, None] + np.log(value) + np.log(failed).sum(axis=0)
    return Group(
        depth,
        feature.astype(np.intp),
        lower,
        upper,
        log_failed,
        np.log(satisfied) - np.log(failed),
        (1 - zero[:, None, :]) / satisfied,
        1 / (1 - nodes),
    )


def forest_paths(forest: RandomForestClassifier) -> Paths:
    """The leaf tables of a fitted forest (class 1 probability)."""
    scale = 1.0 / len(forest.estimators_)
    leaves = [leaf for tree in forest.estimators_ for leaf in _tree_paths(tree.tree_, scale)]
    expected = math.fsum(v * math.prod(z for *_, z in path) for path, v in leaves)
    by_depth: dict[int, list[Leaf]] = {}
    for path, v in leaves:
        if path and v > 0:  # a leaf of value 0, or a tree without a split, moves no contribution
            by_depth.setdefault(len(path), []).append((path, v))
    return Paths(tuple(_group(group, d) for d, group in sorted(by_depth.items())), expected)


def shap_values(paths: Paths, x: np.ndarray, n_features: int) -> np.ndarray:
    """(rows, n_features) contributions of the forest's inputs ``x`` (the classifier's own input matrix), one row
    at a time: a rows axis in the einsums costs more per row than it saves (measured 1, 2 and 8 rows)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)  # sklearn's trees compare float32 inputs
    return np.array([_row(paths, row, n_features) for row in x]).reshape(len(x), n_features)


def _row(paths: Paths, x: np.ndarray, n_features: int) -> np.ndarray:
    out = np.zeros(n_features)
    for g in paths.groups:
        sent = x[g.feature]  # (depth, leaves)
        one = (sent > g.lower) & (sent <= g.upper)
        weighted = np.exp(g.log_failed + np.einsum("dl,dql->ql", one.astype(np.float64), g.log_ratio))  # W_q
        phi = np.where(one, np.einsum("ql,dql->dl", weighted, g.satisfied), -(g.failed @ weighted))
        out += np.bincount(g.feature.ravel(), weights=phi.ravel(), minlength=n_features)
    return out


@dataclass(frozen=True)
class Explanation:
    """Contributions per input feature (rows x ``names``), the expected value and the forest's probability."""

    names: tuple[str, ...]
    contributions: np.ndarray
    expected_value: float
    probability: np.ndarray

    def top(self, k: int) -> list[list[dict[str, float | str]]]:
        """The ``k`` largest contributions by size of each row, largest first: ``{"feature", "contribution"}``."""
        order = np.argsort(-np.abs(self.contributions), axis=1, kind="stable")[:, :k]
        return [
            [{"feature": self.names[j], "contribution": float(row[j])} for j in picks]
            for row, picks in zip(self.contributions, order, strict=True)
        ]


class ForestExplainer:
    """TreeSHAP of a fitted hvbuyer random-forest pipeline, on the serving matrix (numerics by name, region)."""

    def __init__(self, pipeline: Pipeline) -> None:
        forest = pipeline.named_steps["classifier"]
        if not isinstance(forest, RandomForestClassifier):
            raise TypeError(f"TreeSHAP needs a random forest, not {type(forest).__name__}")
        preprocess = pipeline.named_steps["preprocess"]
        self.numeric = tuple(preprocess.transformers_[0][2])
        self.categories = tuple(str(c) for c in preprocess.named_transformers_["categorical"].categories_[0])
        self.names = (*self.numeric, "region")
        self.paths = forest_paths(forest)
        self.width = len(self.numeric) + len(self.categories)
        # classifier input column -> input feature: the numerics, then every one-hot region column -> "region"
        self._owner = np.array([*range(len(self.numeric)), *[len(self.numeric)] * len(self.categories)])

    @property
    def expected_value(self) -> float:
        return self.paths.expected_value

    def classifier_input(self, numeric: np.ndarray, region: Sequence[str]) -> np.ndarray:
        """The pipeline's transform, without pandas: missing numerics -> the sentinel, region one-hot."""
        out = np.zeros((len(numeric), self.width))
        out[:, : len(self.numeric)] = np.where(np.isnan(numeric), MISSING_SENTINEL, numeric)
        index = {c: len(self.numeric) + i for i, c in enumerate(self.categories)}
        hot = np.array([index.get(r, -1) for r in region], dtype=np.intp)
        known = hot >= 0
        out[np.flatnonzero(known), hot[known]] = 1.0
        return out

    def explain(self, numeric: np.ndarray, region: Sequence[str]) -> Explanation:
        """Contributions of each row (``numeric`` columns in ``self.numeric`` order, raw values, NaN = missing)."""
        raw = shap_values(self.paths, self.classifier_input(numeric, region), self.width)
        by_input = np.zeros((len(raw), len(self.names)))
        np.add.at(by_input.T, self._owner, raw.T)
        return Explanation(self.names, by_input, self.expected_value, self.expected_value + raw.sum(axis=1))

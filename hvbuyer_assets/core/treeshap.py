"""Exact path-dependent TreeSHAP (Lundberg et al. 2020, the ``shap`` package's ``TreeExplainer`` with
``feature_perturbation="tree_path_dependent"``) of the champion's random forest, vectorised in numpy over every
leaf of every tree.

For one leaf ``l`` with value ``v`` the path-dependent expectation given the features in ``S`` factorises over the
distinct features ``j`` its path splits on: ``v * prod_j (o_j if j in S else z_j)``, where ``o_j`` says whether
``x`` satisfies every split on ``j`` along the path and ``z_j`` is the share of training cover those splits keep.
The Shapley value of feature ``i`` in that product game is ``v (o_i - z_i) sum_k w_k [t^k] prod_{j != i} (z_j +
o_j t)`` with ``w_k = k! (d-k-1)! / d!``. Writing ``w_k`` as the Beta integral ``int_0^1 s^k (1-s)^(d-k-1) ds``
turns the sum into ``int_0^1 prod_{j != i} g_j(s) ds`` with ``g_j(s) = o_j s + z_j (1 - s)``, a polynomial of
degree ``d - 1``: Gauss-Legendre quadrature with ``ceil(depth / 2)`` nodes integrates it exactly, so each leaf
costs O(depth x nodes) per row instead of O(depth^2) polynomial arithmetic. A forest's value is the mean of its
trees'. The contributions plus the expected value equal the forest's probability (``hvbuyer_tests/core/
test_treeshap.py``: additivity, and equality with Shapley values enumerated from the tree itself).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from hvbuyer_assets.core.model import MISSING_SENTINEL

ROW_CHUNK = 1  # rows explained together: one at a time is fastest (measured 1, 2, 4, 8); arrays ~10 MB


@dataclass(frozen=True)
class Paths:
    """Every leaf of a forest as the distinct features its path splits on (padded to the deepest path)."""

    feature: np.ndarray  # (leaves, depth) int: split feature (0 where padded)
    lower: np.ndarray  # (leaves, depth): x > lower ...
    upper: np.ndarray  # ... and x <= upper on every split of that feature
    zero: np.ndarray  # (leaves, depth): share of cover the path's splits on that feature keep (1 where padded)
    used: np.ndarray  # (leaves, depth) bool: a real feature, not padding
    value: np.ndarray  # (leaves,): leaf value / number of trees
    nodes: np.ndarray  # (q,): Gauss-Legendre nodes on [0, 1]
    weights: np.ndarray  # (q,): their weights
    # g_j(s) at each node: o_j s + z_j (1 - s); 1 where padded. ``failed_product``: prod_j g_j with every o_j = 0;
    # a row's product is that times exp(sum of ``log_ratio`` over the features it satisfies).
    failed_product: np.ndarray  # (leaves, q)
    log_ratio: np.ndarray  # (leaves, depth, q): log(g_j | o_j = 1) - log(g_j | o_j = 0)
    inv_satisfied: np.ndarray  # (leaves, depth, q): 1 / g_j where o_j = 1
    inv_failed: np.ndarray  # (leaves, depth, q): 1 / g_j where o_j = 0
    expected_value: float


def _tree_paths(tree, scale: float) -> list[tuple[list[tuple[int, float, float, float]], float]]:
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


def forest_paths(forest: RandomForestClassifier) -> Paths:
    """The leaf tables of a fitted forest (class 1 probability)."""
    scale = 1.0 / len(forest.estimators_)
    leaves = [leaf for tree in forest.estimators_ for leaf in _tree_paths(tree.tree_, scale)]
    depth = max(1, max(len(path) for path, _ in leaves))
    n = len(leaves)
    feature, used = np.zeros((n, depth), dtype=np.intp), np.zeros((n, depth), dtype=bool)
    lower, upper, zero = np.full((n, depth), -np.inf), np.full((n, depth), np.inf), np.ones((n, depth))
    for i, (path, _) in enumerate(leaves):
        d = len(path)
        if d:
            feature[i, :d], lower[i, :d], upper[i, :d], zero[i, :d] = zip(*path, strict=True)
            used[i, :d] = True
    value = np.array([v for _, v in leaves])
    nodes, weights = np.polynomial.legendre.leggauss(math.ceil(depth / 2))  # exact up to degree depth - 1
    nodes, weights = (nodes + 1) / 2, weights / 2  # on [0, 1]
    satisfied = np.where(used[..., None], nodes + zero[..., None] * (1 - nodes), 1.0)
    failed = np.where(used[..., None], zero[..., None] * (1 - nodes), 1.0)
    expected = float((value * zero.prod(axis=1)).sum())
    log_ratio = np.log(satisfied) - np.log(failed)
    tables = (failed.prod(axis=1), log_ratio, 1 / satisfied, 1 / failed)
    return Paths(feature, lower, upper, zero, used, value, nodes, weights, *tables, expected)


def shap_values(paths: Paths, x: np.ndarray, n_features: int) -> np.ndarray:
    """(rows, n_features) contributions of the forest's inputs ``x`` (the classifier's own input matrix)."""
    x = np.asarray(x, dtype=np.float32).astype(np.float64)  # sklearn's trees compare float32 inputs
    out = np.zeros((len(x), n_features))
    for start in range(0, len(x), ROW_CHUNK):
        out[start : start + ROW_CHUNK] = _chunk(paths, x[start : start + ROW_CHUNK], n_features)
    return out


def _chunk(paths: Paths, x: np.ndarray, n_features: int) -> np.ndarray:
    rows = len(x)
    sent = x[:, paths.feature]  # (rows, leaves, depth)
    one = (sent > paths.lower) & (sent <= paths.upper) & paths.used
    exponent = (one[:, :, None, :].astype(np.float64) @ paths.log_ratio)[:, :, 0, :]  # (rows, leaves, q)
    weighted = (paths.failed_product * np.exp(exponent) * paths.weights)[..., None]  # w_q prod_j g_j(s_q)
    # int prod_{j != i} g_j(s) ds = sum_q w_q prod_j g_j(s_q) / g_i(s_q), for either value of o_i
    integral = np.where(one, (paths.inv_satisfied @ weighted)[..., 0], (paths.inv_failed @ weighted)[..., 0])
    phi = paths.value[None, :, None] * (one - paths.zero) * integral * paths.used
    flat = (np.arange(rows)[:, None, None] * n_features + paths.feature[None]).ravel()
    return np.bincount(flat, weights=phi.ravel(), minlength=rows * n_features).reshape(rows, n_features)


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

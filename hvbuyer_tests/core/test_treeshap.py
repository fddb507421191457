"""Exact path-dependent TreeSHAP (``core.treeshap``): equal to Shapley values enumerated over every coalition from
the trees themselves, additive (contributions + expected value == the forest's probability within 1e-6), and the
pipeline's inputs built without pandas exactly as the pipeline builds them."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier

from hvbuyer_assets.core import model, treeshap
from hvbuyer_assets.core.features import FEATURE_NUMERIC


def _expectation(tree, x: np.ndarray, known: set[int], node: int = 0) -> float:
    """E[tree(x) | the features in ``known``], path-dependent: unknown splits follow both children by cover."""
    left, right = tree.children_left[node], tree.children_right[node]
    if left == -1:
        return float(tree.value[node, 0, 1] / tree.value[node, 0].sum())
    feature = tree.feature[node]
    if feature in known:
        return _expectation(tree, x, known, left if x[feature] <= tree.threshold[node] else right)
    cover = tree.weighted_n_node_samples
    both = cover[left] * _expectation(tree, x, known, left) + cover[right] * _expectation(tree, x, known, right)
    return float(both / cover[node])


def _enumerated(forest: RandomForestClassifier, x: np.ndarray) -> np.ndarray:
    """Shapley values by their definition: every coalition of the other features, every tree."""
    n = len(x)
    phi = np.zeros(n)
    for estimator in forest.estimators_:
        for i in range(n):
            others = [j for j in range(n) if j != i]
            for size in range(n):
                weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
                for coalition in itertools.combinations(others, size):
                    known = set(coalition)
                    gain = _expectation(estimator.tree_, x, known | {i}) - _expectation(estimator.tree_, x, known)
                    phi[i] += weight * gain
    return phi / len(forest.estimators_)


def _data(n: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype(np.float32).astype(np.float64)
    x[:, 1] = np.round(x[:, 1])  # ties at thresholds, repeated values
    y = (x[:, 0] + x[:, 1] * x[:, 2] + rng.normal(size=n) > 0).astype(int)
    return x, y


@pytest.mark.parametrize("seed", [0, 1])
def test_contributions_equal_shapley_values_enumerated_from_the_trees(seed: int) -> None:
    x, y = _data(400, 5, seed)
    forest = RandomForestClassifier(n_estimators=3, max_depth=6, max_samples=0.5, random_state=seed).fit(x, y)
    paths = treeshap.forest_paths(forest)
    got = treeshap.shap_values(paths, x[:5], 5)
    for row in range(5):
        np.testing.assert_allclose(got[row], _enumerated(forest, x[row]), rtol=0, atol=1e-12)
    assert paths.expected_value == pytest.approx(_expectation_of_forest(forest, x[0]), abs=1e-12)


def _expectation_of_forest(forest: RandomForestClassifier, x: np.ndarray) -> float:
    return float(np.mean([_expectation(e.tree_, x, set()) for e in forest.estimators_]))


def test_contributions_plus_expected_value_are_the_forest_probability_at_full_depth() -> None:
    x, y = _data(6000, 24, 3)
    forest = RandomForestClassifier(
        n_estimators=20, max_depth=12, min_samples_leaf=5, max_samples=0.5, max_features="sqrt", random_state=0
    ).fit(x, y)
    paths = treeshap.forest_paths(forest)
    assert paths.depth >= 11  # paths of 11-12 distinct features: every quadrature node is needed
    values = treeshap.shap_values(paths, x[:50], 24)
    np.testing.assert_allclose(values.sum(axis=1) + paths.expected_value, forest.predict_proba(x[:50])[:, 1], atol=1e-9)


def test_trees_without_a_split_and_leaves_of_value_zero_only_move_the_expected_value() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 4)).astype(np.float32).astype(np.float64)
    y = ((x[:, 0] < 1.2) & (x[:, 1] <= 1.6)).astype(int)  # 87 % positives
    forest = RandomForestClassifier(n_estimators=12, max_depth=4, max_samples=9, random_state=1).fit(x, y)
    trees = [e.tree_ for e in forest.estimators_]
    assert any(t.node_count == 1 and t.value[0, 0, 1] == 1 for t in trees)  # a bootstrap of positives: one leaf
    assert any(((t.children_left == -1) & (t.value[:, 0, 1] == 0)).any() for t in trees)  # leaves of value 0
    paths = treeshap.forest_paths(forest)
    got = treeshap.shap_values(paths, x[:4], 4)
    for row in range(4):
        np.testing.assert_allclose(got[row], _enumerated(forest, x[row]), rtol=0, atol=1e-12)
    assert paths.expected_value == pytest.approx(_expectation_of_forest(forest, x[0]), abs=1e-12)
    values = treeshap.shap_values(paths, x[:40], 4)
    np.testing.assert_allclose(
        values.sum(axis=1) + paths.expected_value, forest.predict_proba(x[:40])[:, 1], atol=1e-12
    )


def _training_frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.gamma(2.0, 50.0, n) for name in FEATURE_NUMERIC})
    frame.loc[rng.random(n) < 0.2, "total_spend"] = np.nan  # missing values: the sentinel
    frame["region"] = rng.choice(["East", "West", "North", "Unknown"], n)
    frame["label"] = (frame["loyalty_points"].fillna(0) + rng.normal(0, 40, n) > 110).astype(int)
    return frame


def test_the_pipeline_explainer_is_additive_on_its_inputs_and_builds_them_like_the_pipeline() -> None:
    frame = _training_frame(3000, 5)
    pipeline = model.train_model(frame, model.ModelParams(n_estimators=15, max_depth=8, n_jobs=1))
    explainer = treeshap.ForestExplainer(pipeline)
    rows = frame.head(40).copy()
    rows.loc[rows.index[:3], "region"] = "Atlantis"  # unknown to the encoder: no one-hot column set
    numeric = rows[list(explainer.numeric)].to_numpy(np.float64)
    built = explainer.classifier_input(numeric, rows["region"].tolist())
    expected = pipeline.named_steps["preprocess"].transform(model.model_input(rows))
    np.testing.assert_array_equal(built, expected)
    found = explainer.explain(numeric, rows["region"].tolist())
    assert found.names == (*FEATURE_NUMERIC, "region")
    np.testing.assert_allclose(found.probability, model.predict_proba(pipeline, rows), atol=1e-9)
    np.testing.assert_allclose(found.contributions.sum(axis=1) + found.expected_value, found.probability, atol=1e-12)
    top = found.top(3)[0]
    assert [abs(r["contribution"]) for r in top] == sorted((abs(r["contribution"]) for r in top), reverse=True)
    assert abs(top[0]["contribution"]) == np.abs(found.contributions[0]).max()


def test_only_a_forest_is_explained() -> None:
    frame = _training_frame(500, 6)
    with pytest.raises(TypeError, match="TreeSHAP needs a random forest, not LogisticRegression"):
        treeshap.ForestExplainer(model.train_model(frame, kind="logistic_regression"))

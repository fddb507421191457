import copy

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.preprocessing import OneHotEncoder

from hvbuyer_assets.core.features import FEATURE_COLUMNS, FEATURE_NUMERIC
from hvbuyer_assets.core.model import (
    MISSING_SENTINEL,
    MODEL_KINDS,
    ModelParams,
    build_pipeline,
    input_columns,
    model_input,
    onnx_inputs,
    predict_proba,
    to_onnx,
    train_model,
)

FAST = ModelParams(n_estimators=25, max_depth=6, min_samples_leaf=5, n_jobs=1)


def synthetic(n: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A training-set-like frame whose label depends on total_spend, age and region."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({name: rng.gamma(2.0, 50.0, n) for name in FEATURE_NUMERIC})
    frame["age"] = rng.uniform(18, 80, n)
    frame.loc[rng.random(n) < 0.2, "age"] = np.nan
    frame.loc[rng.random(n) < 0.3, "days_since_last_purchase"] = np.nan
    frame["region"] = pd.array(rng.choice(["East", "West", "North"], n), dtype="string[pyarrow]")
    east = (frame["region"] == "East").to_numpy(dtype=float)
    score = (frame["total_spend"] - 100) / 40 + 1.5 * east - (frame["age"].fillna(50) - 50) / 15
    frame["label"] = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(np.int8)
    frame["split"] = pd.array(np.where(np.arange(n) % 4 == 0, "holdout", "train"), dtype="string[pyarrow]")
    frame["customer_id"] = pd.array([f"c{i}" for i in range(n)], dtype="string[pyarrow]")
    return frame


def test_params_read_back_from_a_pipeline():
    """model_evaluation trains its baselines with the candidate's own parameters, read back from the pipeline."""
    params = ModelParams(n_estimators=7, max_depth=3, min_samples_leaf=9, max_samples=0.25, n_jobs=1, random_state=1)
    assert ModelParams.of(build_pipeline(params)) == params
    assert ModelParams.of(build_pipeline()) == ModelParams()


def test_random_forest_pipeline_structure_follows_params():
    params = ModelParams(n_estimators=7, max_depth=3, min_samples_leaf=9, max_samples=0.25, random_state=1)
    pipe = build_pipeline(params)
    numeric, categorical = pipe.named_steps["preprocess"].transformers[:2]
    imputer = numeric[1].named_steps["impute"]
    assert isinstance(imputer, SimpleImputer) and imputer.strategy == "constant"
    assert imputer.fill_value == MISSING_SENTINEL and not imputer.add_indicator
    assert list(numeric[2]) == list(FEATURE_NUMERIC)
    assert isinstance(categorical[1], OneHotEncoder) and categorical[1].handle_unknown == "ignore"
    assert categorical[2] == ["region"]
    rf = pipe.named_steps["classifier"]
    assert isinstance(rf, RandomForestClassifier)
    assert (rf.n_estimators, rf.max_depth, rf.min_samples_leaf, rf.max_samples, rf.random_state) == (
        7,
        3,
        9,
        0.25,
        1,
    )
    assert rf.class_weight is None


def test_baselines_use_their_own_features_and_estimators():
    logit = build_pipeline(FAST, "logistic_regression")
    assert isinstance(logit.named_steps["classifier"], LogisticRegression)
    assert "scale" in logit.named_steps["preprocess"].transformers[0][1].named_steps
    demo = build_pipeline(FAST, "demographics_only")
    assert demo.named_steps["preprocess"].transformers[0][2] == ["age", "loyalty_points"]
    with pytest.raises(ValueError, match="unknown model kind"):
        build_pipeline(FAST, "xgboost")  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_models_learn_the_signal_and_score_holdout(kind):
    data = synthetic()
    model = train_model(data, FAST, kind)
    hold = data[data["split"] == "holdout"]
    proba = predict_proba(model, hold)
    assert proba.shape == (len(hold),) and ((proba >= 0) & (proba <= 1)).all()
    floor = 0.65 if kind == "demographics_only" else 0.75
    assert roc_auc_score(hold["label"], proba) > floor


def test_train_model_uses_only_train_rows():
    data = synthetic()
    data["region"] = data["region"].astype(object)
    data.loc[data["split"] == "holdout", "region"] = "HoldoutOnly"
    model = train_model(data, FAST)
    categories = model.named_steps["preprocess"].named_transformers_["categorical"].categories_[0]
    assert "HoldoutOnly" not in set(categories)
    assert model.named_steps["classifier"].n_features_in_ == len(FEATURE_NUMERIC) + len(categories)


def test_predict_handles_missing_values_unknown_region_and_extra_columns():
    data = synthetic()
    model = train_model(data, FAST)
    frame = data.head(3).copy()
    frame["region"] = pd.array(["Mars", None, "East"], dtype="string[pyarrow]")
    frame.loc[frame.index[0], list(FEATURE_NUMERIC)] = np.nan
    proba = predict_proba(model, frame)
    assert np.isfinite(proba).all()
    assert input_columns(model) == FEATURE_COLUMNS


def test_training_is_deterministic_and_needs_both_classes():
    data = synthetic()
    a = predict_proba(train_model(data, FAST), data)
    b = predict_proba(train_model(data, FAST), data)
    np.testing.assert_array_equal(a, b)
    data["label"] = np.int8(0)
    with pytest.raises(ValueError, match="both classes"):
        train_model(data, FAST)


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_onnx_conversion_reproduces_predict_proba(kind):
    data = synthetic(seed=1)
    model = train_model(data, ModelParams(n_estimators=40, max_depth=10, min_samples_leaf=3, n_jobs=1), kind)
    frame = data.copy()
    frame["region"] = frame["region"].astype(object)
    frame.loc[frame.index[:5], "region"] = "Unseen"
    frame.loc[frame.index[5:10], "age"] = np.nan
    session = ort.InferenceSession(to_onnx(model), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == list(input_columns(model))
    label, probabilities = session.run(None, onnx_inputs(frame, input_columns(model)))
    np.testing.assert_allclose(probabilities[:, 1], predict_proba(model, frame), atol=1e-4)


def test_forest_scores_are_the_same_bits_on_every_run_and_in_chunks():
    """The forest's own threads add their trees' votes in the order they finish (last bits vary from run to run);
    predict_proba splits the rows over threads instead: every run, and chunks scored apart, give exactly the
    one-thread forest's bits."""
    frame = synthetic(40_000, seed=3)
    fitted = train_model(frame, ModelParams(n_estimators=40, max_depth=10, min_samples_leaf=5, n_jobs=2))
    one_thread = copy.deepcopy(fitted).set_params(classifier__n_jobs=1)
    expected = one_thread.predict_proba(model_input(frame))[:, 1]
    for _ in range(3):
        np.testing.assert_array_equal(predict_proba(fitted, frame), expected, strict=True)
    chunks = [predict_proba(fitted, frame.iloc[start : start + 15_000]) for start in range(0, len(frame), 15_000)]
    np.testing.assert_array_equal(np.concatenate(chunks), expected, strict=True)

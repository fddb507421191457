"""Model pipelines: the random-forest candidate and two baselines, all skl2onnx-convertible.

Every pipeline is ColumnTransformer(numeric: SimpleImputer [+ StandardScaler]; region: OneHotEncoder(
handle_unknown="ignore", dense)) -> classifier, fitted on float64 numerics and a string region column.

Missing numerics: tree models impute the constant ``MISSING_SENTINEL`` (-1), which lies below the range of
every feature (all are >= 0), so "missing" is one split away and nothing relies on native NaN support in the
trees.
The logistic baseline imputes the median. ``add_indicator=True`` is deliberately NOT used: skl2onnx (1.20)
ignores it when converting, producing a graph whose feature vector is shorter than the one the estimator was
fitted on (onnxruntime then fails, or silently reads shifted features).
"""

from __future__ import annotations

import copy
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, Literal

import numpy as np
import pandas as pd
from joblib import effective_n_jobs
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from hvbuyer_assets.core.features import FEATURE_CATEGORICAL, FEATURE_NUMERIC
from hvbuyer_assets.core.rules import UNKNOWN_REGION

ModelKind = Literal["random_forest", "logistic_regression", "demographics_only"]
MODEL_KINDS: tuple[str, ...] = ("random_forest", "logistic_regression", "demographics_only")
DEMOGRAPHIC_NUMERIC: tuple[str, ...] = ("age", "loyalty_points")
MISSING_SENTINEL = -1.0
PREDICT_MIN_ROWS = 10_000  # rows per thread below which a forest predicts in the calling thread


@dataclass(frozen=True)
class ModelParams:
    """Random-forest hyper-parameters (also used by the demographics-only baseline).

    max_samples: fraction of rows bootstrapped per tree (None = all); the main lever on fit time.
    class_weight: None keeps predicted probabilities calibrated (segment summaries sum them as expected
    buyers).
    n_estimators: 100, not 200: on the 20k sample the hold-out ROC-AUC is the same to 1e-4 (0.8072 vs 0.8073)
    while every prediction costs half (ONNX Runtime, 10,000 rows: 30 ms vs 61 ms), which is what the API's
    batch target needs.
    """

    n_estimators: int = 100
    max_depth: int | None = 12
    min_samples_leaf: int = 20
    max_samples: float | None = 0.5
    max_features: str | float = "sqrt"
    class_weight: str | None = None
    n_jobs: int = -1
    random_state: int = 42

    @classmethod
    def of(cls, pipeline: Pipeline) -> ModelParams:
        """The parameters a fitted (or unfitted) random-forest pipeline was built with."""
        given = pipeline.named_steps["classifier"].get_params()
        return cls(**{f.name: given[f.name] for f in fields(cls)})


def model_columns(kind: ModelKind = "random_forest") -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(numeric, categorical) input columns of a model kind."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; expected one of {MODEL_KINDS}")
    numeric = DEMOGRAPHIC_NUMERIC if kind == "demographics_only" else FEATURE_NUMERIC
    return numeric, FEATURE_CATEGORICAL


def _preprocessor(numeric: tuple[str, ...], categorical: tuple[str, ...], linear: bool) -> ColumnTransformer:
    steps: list[tuple[str, Any]]
    if linear:
        steps = [("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]
    else:
        steps = [("impute", SimpleImputer(strategy="constant", fill_value=MISSING_SENTINEL))]
    encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float64)
    return ColumnTransformer(
        [("numeric", Pipeline(steps), list(numeric)), ("categorical", encoder, list(categorical))],
        remainder="drop",
        sparse_threshold=0.0,
    )


def build_pipeline(params: ModelParams | None = None, kind: ModelKind = "random_forest") -> Pipeline:
    """An unfitted pipeline of the given kind (default: the random-forest candidate)."""
    params = params or ModelParams()
    numeric, categorical = model_columns(kind)
    if kind == "logistic_regression":
        classifier: Any = LogisticRegression(max_iter=1000, C=1.0, random_state=params.random_state)
    else:
        classifier = RandomForestClassifier(
            n_estimators=params.n_estimators,
            max_depth=params.max_depth,
            min_samples_leaf=params.min_samples_leaf,
            max_samples=params.max_samples,
            max_features=params.max_features,
            class_weight=params.class_weight,
            n_jobs=params.n_jobs,
            random_state=params.random_state,
        )
    preprocess = _preprocessor(numeric, categorical, linear=kind == "logistic_regression")
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def _prepare(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    out = pd.DataFrame(index=frame.index)
    for name in columns:
        if name in FEATURE_CATEGORICAL:
            out[name] = frame[name].astype(object).where(frame[name].notna(), UNKNOWN_REGION).astype(str)
        else:
            out[name] = frame[name].to_numpy(dtype="float64", na_value=np.nan)
    return out


def model_input(frame: pd.DataFrame, kind: ModelKind = "random_forest") -> pd.DataFrame:
    """Input columns of a model kind: numerics as float64, region as plain str ("Unknown" when missing)."""
    numeric, categorical = model_columns(kind)
    return _prepare(frame, numeric + categorical)


def input_columns(model: Pipeline) -> tuple[str, ...]:
    """Input column names of a fitted pipeline (also the ONNX graph inputs, in order)."""
    return tuple(str(name) for name in model.feature_names_in_)


def train_model(
    training_set: pd.DataFrame, params: ModelParams | None = None, kind: ModelKind = "random_forest"
) -> Pipeline:
    """Fit a pipeline on the ``split == "train"`` rows (all rows if there is no split column)."""
    train = training_set[training_set["split"] == "train"] if "split" in training_set else training_set
    labels = train["label"].to_numpy()
    if len(np.unique(labels)) < 2:
        raise ValueError(f"training rows need both classes; got {len(train)} rows with labels {np.unique(labels)}")
    pipeline = build_pipeline(params, kind)
    pipeline.fit(model_input(train, kind), labels)
    return pipeline


def predict_proba(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """P(label = 1) for each row of a features frame (extra columns are ignored); the same bits on every run.

    A forest's own ``n_jobs`` splits the trees over threads that add their votes into one array in whatever order
    they finish, so a row's probability changes in its last bits from run to run (measured: 132,513 of 250,000
    rows differ between two identical calls on 2 cores). Here the rows are split instead: each thread runs every
    tree in order on its rows, which gives exactly the single-threaded sum, as parallel as before."""
    rows = _prepare(frame, input_columns(model))
    forest = model[-1]
    if not isinstance(forest, RandomForestClassifier):
        return model.predict_proba(rows)[:, 1]
    inputs = model[:-1].transform(rows)  # what the pipeline's predict_proba hands its last step
    single = copy.copy(forest)  # the same trees, predicting in the calling thread
    single.n_jobs = 1
    threads = min(effective_n_jobs(forest.n_jobs), len(rows) // PREDICT_MIN_ROWS)
    if threads <= 1:
        return single.predict_proba(inputs)[:, 1]
    with ThreadPoolExecutor(threads) as pool:  # the trees' traversal releases the GIL
        parts = list(pool.map(single.predict_proba, np.array_split(inputs, threads)))
    return np.concatenate(parts)[:, 1]


def score_rows(model: Pipeline, features: pd.DataFrame, version: str, scored_at: pd.Timestamp) -> pd.DataFrame:
    """Batch scores of a features frame (index ``customer_id``): one row per customer with
    ``large_purchase_probability``, ``model_version``, ``scored_at`` and ``features_as_of``; chunks of one features
    frame scored apart and concatenated give the frame scored whole."""
    return pd.DataFrame(
        {
            "customer_id": features.index.astype(pd.StringDtype("pyarrow")),
            "large_purchase_probability": predict_proba(model, features),
            "model_version": pd.Series(version, index=features.index, dtype=pd.StringDtype("pyarrow")),
            "scored_at": scored_at,
            "features_as_of": features["feature_as_of"].array,  # as is: to_numpy() boxes tz-aware times one by one
        }
    ).reset_index(drop=True)


def onnx_inputs(frame: pd.DataFrame, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
    """ONNX feed: one (n, 1) array per input column; float32 for numerics, str objects for categoricals."""
    prepared = _prepare(frame, columns)
    return {
        name: prepared[name].to_numpy(dtype=object if name in FEATURE_CATEGORICAL else "float32").reshape(-1, 1)
        for name in columns
    }


def to_onnx(model: Pipeline) -> bytes:
    """Convert a fitted pipeline with skl2onnx: one input per column of ``input_columns(model)`` (float
    [None, 1] for numerics, string [None, 1] for region). Outputs ``label`` and ``probabilities`` ((n, 2),
    no ZipMap). Feed it with ``onnx_inputs(frame, input_columns(model))``.

    Numerics enter the graph as float32 because the ONNX ``Imputer`` operator has no double kernel in
    onnxruntime; this loses nothing for the trees, which sklearn also evaluates on float32 copies of X.
    """
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    initial_types: list[tuple[str, Any]] = [
        (name, StringTensorType([None, 1]) if name in FEATURE_CATEGORICAL else FloatTensorType([None, 1]))
        for name in input_columns(model)
    ]
    onx = convert_sklearn(model, initial_types=initial_types, options={"zipmap": False})
    return onx.SerializeToString()


ONNX_PARITY_TOLERANCE = 1e-4


def onnx_session(onnx_bytes: bytes, threads: int = 1) -> Any:
    """An onnxruntime InferenceSession on CPU; one intra-op thread by default (fastest for single rows, and
    a multi-worker server should not oversubscribe the cores); more threads split large batches by rows."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    if threads > 1:  # no busy-waiting workers between calls: they would steal the CPU from the web server
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(onnx_bytes, sess_options=options, providers=["CPUExecutionProvider"])


def onnx_predict_proba(session: Any, feed: dict[str, np.ndarray]) -> np.ndarray:
    """P(label = 1) from a session of :func:`to_onnx` fed with :func:`onnx_inputs` (or an equal feed)."""
    return session.run(["probabilities"], feed)[0][:, 1]


def onnx_max_abs_diff(model: Pipeline, session: Any, frame: pd.DataFrame) -> float:
    """Largest |ONNX - sklearn| probability over the rows of a features frame (0.0 for no rows)."""
    if len(frame) == 0:
        return 0.0
    expected = predict_proba(model, frame)
    got = onnx_predict_proba(session, onnx_inputs(frame, input_columns(model)))
    return float(np.max(np.abs(got.astype("float64") - expected)))


def known_categories(model: Pipeline, column: str = "region") -> tuple[str, ...]:
    """The categories a fitted pipeline's one-hot encoder learned for ``column`` (others encode as all-zero)."""
    transformer = model.named_steps["preprocess"]
    for _, step, cols in transformer.transformers_:
        if isinstance(step, OneHotEncoder) and column in list(cols):
            return tuple(str(v) for v in step.categories_[list(cols).index(column)])
    raise ValueError(f"the pipeline has no one-hot encoder for {column!r}")

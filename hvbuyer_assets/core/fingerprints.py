"""Identities of data and of trainings: a re-run on the same inputs is recognised instead of repeated.

- :func:`data_fingerprint` of the current features: the retraining sensor never retrains twice on the same one.
- :func:`training_fingerprint` of (training data, features, hyper-parameters): a re-run registers no new version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import pandas as pd

from hvbuyer_assets.core import features, model


def data_fingerprint(customer_features: pd.DataFrame) -> str:
    """16 hex digits over the customers (index), the model inputs and the features' as-of time."""
    numeric, categorical = model.model_columns()
    columns = [*numeric, *categorical, "feature_as_of"]
    hashed = pd.util.hash_pandas_object(customer_features[columns], index=True).to_numpy()
    return hashlib.sha256(hashed.tobytes()).hexdigest()[:16]


def training_fingerprint(training_set: pd.DataFrame, classifier_params: Mapping[str, Any]) -> str:
    """32 hex digits over every training row (values, not index), ``FEATURE_COLUMNS`` and the classifier's
    parameters (``get_params()``)."""
    digest = hashlib.sha256()
    digest.update(pd.util.hash_pandas_object(training_set, index=False).to_numpy().tobytes())
    digest.update(json.dumps(list(features.FEATURE_COLUMNS)).encode())
    digest.update(json.dumps(dict(classifier_params), sort_keys=True, default=str).encode())
    return digest.hexdigest()[:32]

"""What each stored column means, by column name, for the column schemas shown with every stored frame.

Feature columns take their descriptions from ``core.feature_spec.FEATURES``; the rest are listed here once.
A column missing here is shown with its name and type only.
"""

from __future__ import annotations

from collections.abc import Mapping

from hvbuyer_assets.core.feature_spec import FEATURES

_OTHER: dict[str, str] = {
    # records of the raw drops and the clean frames
    "customer_id": "Customer identifier (as sent in the drop).",
    "transaction_id": "Transaction identifier (as sent in the drop).",
    "signup_date": "Day the customer signed up.",
    "amount": "Transaction amount.",
    "timestamp": "When the transaction happened (UTC).",
    "payment_method": "Payment method.",
    "status": "Transaction status: completed, pending, refunded or failed.",
    "source_file": "Raw file the row came from (lineage).",
    "source_row": "1-based data row in that file (lineage).",
    "arrived_at": "When the file arrived (its modification time; rows stamped after it are set aside).",
    # quarantine
    "record_id": "Identifier of the quarantined record (customer or transaction id), when it has one.",
    "field": "Field that broke a cleaning rule.",
    "value": "The value as it arrived.",
    "reason": "The rule it broke.",
    "action": "What cleaning did: row_dropped, value_nulled (row kept, field unknown) or duplicate_dropped.",
    # features and the training set
    "feature_as_of": "Time T the features are computed as of (the latest valid transaction time).",
    "last_event_at": "Latest transaction a row's features use (the leakage check compares it with the cutoff).",
    "cutoff": "Time the row's features are computed as of; its label looks at (cutoff, cutoff + H].",
    "label": "1 when the customer made a completed purchase >= the threshold within H days after the cutoff.",
    "split": "train (earlier cutoffs) or holdout (cutoff T - H: later than anything trained on).",
    # scores and segments
    "large_purchase_probability": "P(a completed purchase >= the threshold within the next H days).",
    "model_version": "Registered version of `hvbuyer` (the champion) that produced the score.",
    "scored_at": "When the scores were computed (UTC).",
    "features_as_of": "Time T of the features the score is computed from.",
    "age_band": "Age band of the customer group.",
    "loyalty_tier": "Loyalty-points tier of the customer group.",
    "customers": "Customers in the group.",
    "mean_probability": "Mean large-purchase probability in the group.",
    "expected_large_buyers": "Sum of the group's probabilities: expected number of large buyers.",
    "rank": "Rank by expected large buyers (1 = most).",
}

COLUMN_DESCRIPTIONS: Mapping[str, str] = {**_OTHER, **{f.name: f.description for f in FEATURES}}

"""The contract mess injected into the raw files, as shares of rows (see the package docstring): each
mapping's kinds are drawn in insertion order (code 0 = clean), so the order is part of the determinism."""

from __future__ import annotations

import numpy as np

BAD_AGES = np.array([-3, 0, 7, 150, 250, 999])
BAD_TIMESTAMPS = ("not a date", "0000-00-00T00:00:00Z", "")

# Shares of the transaction mess kinds (index 0 = clean, rest as listed in the module docstring).
AMOUNT_MESS = {
    "dollar": 0.015,
    "padded": 0.003,
    "empty": 0.002,
    "null": 0.002,
    "na": 0.001,
    "negative": 0.001,
}
TS_MESS = {"plus2": 0.015, "minus5": 0.015, "frac": 0.006, "bad": 0.0025, "null": 0.0025}
ID_MESS = {"null": 0.0015, "omitted": 0.001}
STATUS_MESS = {"title": 0.005, "upper": 0.003}
PM_MESS = {"null": 0.003, "upper": 0.005}
DUPLICATE_SHARE = 0.01
UNKNOWN_SHARE = 0.004
COMMA_SHARE = 0.30

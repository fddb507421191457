"""The latent customers: age, region, signup, loyalty points and a slowly drifting spend propensity."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from hvbuyer_assets.datagen.world import DAY, DRIFT_CODE, YEAR, categorical

SIGNUP_ANCHOR = pd.Timestamp("2026-06-30", tz="UTC")
SIGNUP_SPAN_DAYS = 5 * 365

REGIONS = ("North", "South", "East", "West", "Central")
REGION_SHARES = {"none": (0.30, 0.24, 0.20, 0.16, 0.10), "demographics": (0.14, 0.18, 0.20, 0.28, 0.20)}
REGION_EFFECT = np.array([0.0, -0.20, 0.10, 0.30, 0.15])
AGE_BETA = {"none": (2.0, 4.5), "demographics": (2.7, 3.6)}


@dataclass(frozen=True)
class Customers:
    """Latent customer world (clean values; the CSV is rendered from it with mess)."""

    age: np.ndarray  # int16
    region: np.ndarray  # int8 code into REGIONS
    signup: np.ndarray  # int64 epoch seconds (midnight UTC)
    loyalty: np.ndarray  # int64
    z0: np.ndarray  # float64 latent spend propensity
    amp: np.ndarray
    period: np.ndarray  # seconds
    phase: np.ndarray


def _age_effect(age: np.ndarray) -> np.ndarray:
    return 0.45 * np.exp(-(((age - 47.0) / 14.0) ** 2)) - 0.2


def simulate_customers(n_customers: int, seed: int, drift: str) -> Customers:
    world = "demographics" if drift == "demographics" else "none"
    rng = np.random.default_rng([seed, n_customers, DRIFT_CODE[world], 0xC057])
    a, b = AGE_BETA[world]
    age = (18 + np.floor(68 * rng.beta(a, b, n_customers))).clip(18, 85).astype(np.int16)
    region = categorical(rng, REGION_SHARES[world], n_customers)
    days_before = np.floor(SIGNUP_SPAN_DAYS * rng.beta(1.1, 1.0, n_customers)).astype(np.int64)
    signup = SIGNUP_ANCHOR.value // 10**9 - days_before * DAY
    z0 = _age_effect(age.astype(np.float64)) + REGION_EFFECT[region] + rng.normal(0.0, 0.9, n_customers)
    tenure_years = days_before / 365.25
    log_points = np.log(120.0) + 0.55 * z0 + 0.30 * tenure_years + rng.normal(0.0, 1.0, n_customers)
    p_zero = np.where(tenure_years < 0.25, 0.30, 0.08)
    loyalty = np.where(rng.random(n_customers) < p_zero, 0, np.floor(np.exp(log_points))).astype(np.int64)
    amp = rng.uniform(0.2, 1.0, n_customers)
    period = rng.uniform(2.0, 6.0, n_customers) * YEAR
    phase = rng.uniform(0.0, 2 * np.pi, n_customers)
    return Customers(age, region, signup, loyalty, z0, amp, period, phase)


def propensity(c: Customers, idx: np.ndarray | tuple[slice, None], t: np.ndarray) -> np.ndarray:
    """Latent spend propensity z(t) of customers ``idx`` at epoch seconds ``t``."""
    anchor = SIGNUP_ANCHOR.value // 10**9
    return c.z0[idx] + c.amp[idx] * np.sin(2 * np.pi * (t - anchor) / c.period[idx] + c.phase[idx])


def shuffled_propensity(c: Customers, seed: int) -> Customers:
    """The same people, each with another customer's spend propensity (``z0`` and its slow drift): a concept
    shift. Who will spend is no longer who spent (nor predicted by age, region or loyalty), while the population's
    behaviour, and so every feature's distribution, stays the same."""
    perm = np.random.default_rng([seed, len(c.age), 0xC0C3]).permutation(len(c.age))
    return replace(c, z0=c.z0[perm], amp=c.amp[perm], period=c.period[perm], phase=c.phase[perm])

"""The autouse fixtures of conftest.py: no test sees the caller's HVBUYER_* / MLFLOW_* / AWS_* variables, and what a
test sets among them does not leak into the next test (the two tests below run in file order)."""

from __future__ import annotations

import os

import pytest

from hvbuyer_tests.conftest import ISOLATED_PREFIXES

LEAK = "HVBUYER_RETRAIN_COOLDOWN_HOURS"


def _isolated() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith(ISOLATED_PREFIXES)}


def test_a_test_starts_without_configuration_variables_and_may_set_them(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _isolated() == {}
    os.environ[LEAK] = "0"  # directly, as code under test might
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///elsewhere.db")
    os.environ["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:1"


def test_the_next_test_does_not_see_them() -> None:
    assert _isolated() == {}


def test_variables_outside_the_prefixes_are_left_alone() -> None:
    assert "PATH" in os.environ

"""HVBUYER_EXECUTOR=k8s selects dagster-k8s's ``k8s_job_executor`` (configuration only: no cluster here); without
dagster-k8s installed, loading the definitions fails naming the package to install."""

from __future__ import annotations

import importlib.util

import pytest

from hvbuyer_assets.definitions import build_definitions
from hvbuyer_assets.defs.executor import executor_for
from hvbuyer_assets.settings import load_settings


@pytest.mark.skipif(importlib.util.find_spec("dagster_k8s") is not None, reason="dagster-k8s is installed here")
def test_k8s_without_dagster_k8s_fails_naming_the_package() -> None:
    settings = load_settings({"HVBUYER_EXECUTOR": "k8s"})
    expected = r"HVBUYER_EXECUTOR=k8s needs the dagster-k8s package .*dagster-k8s==0\.29\.27"
    with pytest.raises(RuntimeError, match=expected):
        executor_for(settings)
    with pytest.raises(RuntimeError, match="dagster-k8s"):
        build_definitions(settings)


@pytest.mark.skipif(importlib.util.find_spec("dagster_k8s") is None, reason="dagster-k8s is not installed here")
def test_k8s_selects_the_k8s_job_executor() -> None:
    defs = build_definitions(load_settings({"HVBUYER_EXECUTOR": "k8s"}))
    assert defs.resolve_job_def("retrain").executor_def.name == "k8s"

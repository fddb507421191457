"""Fixtures of the prod tests: one isolated production-mode deployment per session (see ``deployment.py``)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from hvbuyer_tests.pipeline import write_sample
from hvbuyer_tests.prod.deployment import (
    Deployment,
    FirstBuild,
    Runs,
    Switch,
    boot,
    free_port,
    isolated_env,
    teardown,
)


@pytest.fixture(scope="session")
def s3_switch() -> Iterator[Switch]:
    """The switch between the test deployment's S3 clients and its S3 server (test_prod_s3_down turns it off)."""
    switch = Switch(target_port=free_port())
    try:
        yield switch
    finally:
        switch.off()


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory, s3_switch: Switch) -> Iterator[Deployment]:
    """A running isolated deployment (every process healthy), torn down at the end of the session."""
    deployment = Deployment(isolated_env(tmp_path_factory.mktemp("prod"), s3_switch.target_port, s3_switch.port))
    try:
        deployment.up(say=lambda line: print(f"[prod] {line}"))
        yield deployment
    finally:
        teardown(deployment)


@pytest.fixture(scope="session")
def first_build(prod: Deployment, tmp_path_factory: pytest.TempPathFactory) -> FirstBuild:
    """The sample drop (the one the embedded ``built`` workspace is made from) uploaded to the raw prefix, and the
    full_build run the raw sensor started for it, once finished."""
    drop = tmp_path_factory.mktemp("first-drop")
    write_sample(drop)
    began = time.monotonic()
    boot.upload_drop(prod.env, drop)
    run = Runs(prod).wait_finished("full_build")
    return FirstBuild(run=run, seconds=time.monotonic() - began)

"""The production-mode environment loader and config rendering (no services needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from hvbuyer_tests.prod.deployment import Deployment, boot, prod_env, session_vhost


def test_file_values_apply_unless_the_environment_sets_them(tmp_path: Path) -> None:
    env_file = tmp_path / "x.env"
    env_file.write_text("# comment\n\nA=1\nexport B='two words'\nC=\"3\"\nEMPTY_IN_ENV=file\n")
    loaded = prod_env.load_env(env_file, environ={"B": "from-env", "EMPTY_IN_ENV": "", "UNRELATED": "x"})
    assert loaded == {"A": "1", "B": "from-env", "C": "3", "EMPTY_IN_ENV": "file"}


def test_malformed_line_and_driverless_postgres_url_are_errors_naming_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("A=1\nnot a pair\n")
    with pytest.raises(ValueError, match=r"bad\.env:2: expected KEY=VALUE"):
        prod_env.load_env(bad, environ={})
    driverless = tmp_path / "pg.env"
    driverless.write_text("DAGSTER_PG_URL=postgresql://postgres@127.0.0.1:5432/x\n")
    with pytest.raises(ValueError, match=r"postgresql\+psycopg2"):
        prod_env.load_env(driverless, environ={})


def test_deploy_local_env_describes_the_whole_loopback_topology() -> None:
    env = prod_env.load_env(environ={})
    for key in ("HVBUYER_RAW_URI", "HVBUYER_DATA_DIR", "MLFLOW_ARTIFACTS_DESTINATION"):
        assert env[key].startswith("s3://")
    assert env["HVBUYER_EXECUTOR"] == "celery"
    assert env["MLFLOW_TRACKING_URI"].startswith("http://")
    assert env["DAGSTER_PG_URL"].startswith("postgresql+psycopg2://")
    # Ports that do not collide with `make run` (3000 / 8080 / 5000).
    ports = {env[k] for k in ("HVBUYER_DAGSTER_PORT", "HVBUYER_API_PORT", "HVBUYER_MLFLOW_PORT", "HVBUYER_S3_PORT")}
    assert not ports & {"3000", "8080", "5000"}


def test_rendered_worker_config_nests_broker_and_backend_under_execution_config(tmp_path: Path) -> None:
    env = prod_env.load_env(environ={"HVBUYER_PROD_HOME": str(tmp_path)})
    deployment = Deployment(env)
    deployment.prepare()
    worker = yaml.safe_load((tmp_path / "celery_worker.yaml").read_text())
    assert worker["execution"]["config"]["broker"] == env["HVBUYER_CELERY_BROKER"]
    assert worker["execution"]["config"]["backend"] == env["HVBUYER_CELERY_BACKEND"]
    workspace = yaml.safe_load((tmp_path / "workspace.yaml").read_text())
    assert workspace["load_from"][0]["grpc_server"]["port"] == int(env["HVBUYER_GRPC_PORT"])
    assert (tmp_path / "dagster_home" / "dagster.yaml").exists()


def test_template_with_an_unknown_variable_is_refused(tmp_path: Path) -> None:
    deployment = Deployment({"HVBUYER_PROD_HOME": str(tmp_path)})
    with pytest.raises(ValueError, match="no value for HVBUYER_GRPC_PORT"):
        deployment.render("workspace.yaml", tmp_path / "workspace.yaml")


def test_url_helpers() -> None:
    assert boot.libpq_dsn("postgresql+psycopg2://u@h:5432/db") == "postgresql://u@h:5432/db"
    assert boot.database_name("postgresql+psycopg2://u@h:5432/hvbuyer_dagster") == "hvbuyer_dagster"
    assert boot.split_s3("s3://bucket/a/b/") == ("bucket", "a/b")
    assert boot.broker_vhost("amqp://guest:guest@127.0.0.1:5672//") == "/"
    assert boot.broker_vhost("amqp://guest:guest@127.0.0.1:5672/hvbuyer-t1") == "hvbuyer-t1"
    assert boot.registry_constant("EXPERIMENT_NAME") == "hvbuyer"


def test_the_deployment_runs_its_own_spark_cluster_only_on_spark_at_its_master(tmp_path: Path) -> None:
    """``make prod-up`` starts the standalone cluster (state in ``<prod home>/spark``, the ports of deploy/local.env)
    when the steps run on Spark at that cluster's master; embedded, or Spark elsewhere, starts none."""
    base = {**prod_env.load_env(environ={}), "HVBUYER_PROD_HOME": str(tmp_path)}
    embedded = Deployment(base)
    cluster = embedded.spark_cluster()
    assert cluster.config.home == tmp_path / "spark" and cluster.config.master_url == base["HVBUYER_SPARK_MASTER"]
    assert {cluster.config.master_port, cluster.config.master_ui_port} == {7377, 8490}
    assert not embedded.runs_spark_cluster()  # deploy/local.env: HVBUYER_ENGINE=embedded
    assert Deployment({**base, "HVBUYER_ENGINE": "spark"}).runs_spark_cluster()
    elsewhere = {**base, "HVBUYER_ENGINE": "spark", "HVBUYER_SPARK_MASTER": "spark://10.0.0.5:7077"}
    assert not Deployment(elsewhere).runs_spark_cluster()
    assert embedded.down(say=lambda _: None) == []  # nothing recorded, nothing stopped (cluster included)


def test_without_rabbitmqctl_the_session_uses_the_default_vhost_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The GitHub workflow's RabbitMQ is a service container: no ``rabbitmqctl`` on the runner, a broker of the
    session's own. The deployment then uses its default vhost, which ``up`` neither creates nor deletes."""
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on it: rabbitmqctl is not installed
    broker = f"amqp://guest:guest@127.0.0.1:5672/{session_vhost('t1')}"
    assert boot.broker_vhost(broker) == "/"
    assert boot.ensure_vhost(broker) == []
    boot.drop_vhost(broker)

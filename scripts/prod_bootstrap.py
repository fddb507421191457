"""What a production-mode deployment needs before and around its processes: databases, the RabbitMQ vhost, buckets,
the MLflow experiment, and uploading a drop. Every ``ensure_*`` creates only what is missing (idempotent) and
returns what it created. Each takes the deployment's environment (:func:`prod_env.load_env`).
"""

from __future__ import annotations

import ast
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

DATABASE_KEYS = ("DAGSTER_PG_URL", "MLFLOW_BACKEND_STORE_URI")
REGISTRY_SOURCE = Path(__file__).resolve().parents[1] / "hvbuyer_assets" / "registry.py"
BUCKET_KEYS = ("HVBUYER_RAW_URI", "HVBUYER_DATA_DIR", "MLFLOW_ARTIFACTS_DESTINATION")


def libpq_dsn(sqlalchemy_url: str) -> str:
    """``postgresql+psycopg2://u@h:p/db`` -> ``postgresql://u@h:p/db`` (what psycopg2.connect takes)."""
    scheme, rest = sqlalchemy_url.split("://", 1)
    return f"{scheme.split('+', 1)[0]}://{rest}"


def database_name(sqlalchemy_url: str) -> str:
    """The database a SQLAlchemy URL names."""
    return urlsplit(sqlalchemy_url).path.lstrip("/")


def split_s3(uri: str) -> tuple[str, str]:
    """``s3://bucket/prefix`` -> (bucket, prefix)."""
    if not uri.startswith("s3://"):
        raise ValueError(f"{uri!r} is not an s3:// URI")
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return bucket, prefix.strip("/")


def admin_connection(env: Mapping[str, str]) -> Any:
    """An autocommit psycopg2 connection to the maintenance database (``HVBUYER_PG_ADMIN_URL``)."""
    import psycopg2

    conn = psycopg2.connect(libpq_dsn(env["HVBUYER_PG_ADMIN_URL"]), connect_timeout=5)
    conn.autocommit = True
    return conn


def ensure_databases(env: Mapping[str, str]) -> list[str]:
    """Create the Dagster and MLflow databases if missing."""
    created = []
    conn = admin_connection(env)
    try:
        with conn.cursor() as cur:
            for key in DATABASE_KEYS:
                name = database_name(env[key])
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone() is None:
                    cur.execute(f'CREATE DATABASE "{name}"')
                    created.append(name)
    finally:
        conn.close()
    return created


def drop_databases(env: Mapping[str, str]) -> None:
    """Drop the deployment's databases (the prod tests' throwaway deployments only)."""
    conn = admin_connection(env)
    try:
        with conn.cursor() as cur:
            for key in DATABASE_KEYS:
                cur.execute(f'DROP DATABASE IF EXISTS "{database_name(env[key])}" WITH (FORCE)')
    finally:
        conn.close()


def broker_vhost(broker_url: str) -> str:
    """The RabbitMQ virtual host of an ``amqp://`` URL (``/`` for ``...//``)."""
    path = urlsplit(broker_url).path
    return "/" if path in ("", "/", "//") else path[1:]


def _rabbitmqctl(*args: str) -> str:
    return subprocess.run(["rabbitmqctl", "-q", *args], capture_output=True, text=True, check=True).stdout


def ensure_vhost(broker_url: str) -> list[str]:
    """Create the broker URL's vhost (anything but ``/``) with full rights for its user."""
    vhost = broker_vhost(broker_url)
    if vhost == "/" or vhost in _rabbitmqctl("list_vhosts").split():
        return []
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, urlsplit(broker_url).username or "guest", ".*", ".*", ".*")
    return [vhost]


def drop_vhost(broker_url: str) -> None:
    """Delete the broker URL's vhost (never ``/``)."""
    vhost = broker_vhost(broker_url)
    if vhost != "/":
        _rabbitmqctl("delete_vhost", vhost)


def s3_client(env: Mapping[str, str]) -> Any:
    """A boto3 S3 client for the deployment's endpoint and credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL_S3"],
        region_name=env.get("AWS_DEFAULT_REGION", "us-east-1"),
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
    )


def ensure_buckets(env: Mapping[str, str]) -> list[str]:
    """Create the raw, data and MLflow artifact buckets if missing."""
    client = s3_client(env)
    existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
    created = []
    for key in BUCKET_KEYS:
        bucket, _ = split_s3(env[key])
        if bucket not in existing:
            client.create_bucket(Bucket=bucket)
            existing.add(bucket)
            created.append(bucket)
    return created


def registry_constant(name: str) -> str:
    """A string constant of ``hvbuyer_assets/registry.py``, read from its source: importing the module loads
    MLflow, pandas and skops, 10-20 s on a busy 2-core box, for one name."""
    tree = ast.parse(REGISTRY_SOURCE.read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise LookupError(f"{REGISTRY_SOURCE} defines no {name}")


def ensure_experiment(tracking_uri: str) -> list[str]:
    """Create the ``hvbuyer`` experiment on the tracking server *without* an artifact location, so that the server
    proxies its artifacts to ``--artifacts-destination`` (clients then need no S3 access for the registry)."""
    experiment = registry_constant("EXPERIMENT_NAME")
    api = f"{tracking_uri.rstrip('/')}/api/2.0/mlflow/experiments"
    found = httpx.get(f"{api}/get-by-name", params={"experiment_name": experiment}, timeout=10.0)
    if found.status_code == 200:
        return []
    if "RESOURCE_DOES_NOT_EXIST" not in found.text:
        found.raise_for_status()
    httpx.post(f"{api}/create", json={"name": experiment}, timeout=10.0).raise_for_status()
    return [experiment]


def upload_drop(env: Mapping[str, str], folder: Path, name: str = "") -> list[str]:
    """Upload a drop written by datagen to the raw prefix: its files, then the ``_SUCCESS[_NAME]`` marker that
    tells the raw sensor the drop is complete. Returns the keys written."""
    bucket, prefix = split_s3(env["HVBUYER_RAW_URI"])
    client, keys = s3_client(env), []
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            keys.append(f"{prefix}/{path.name}".lstrip("/"))
            client.upload_file(str(path), bucket, keys[-1])
    keys.append(f"{prefix}/_SUCCESS{'_' + name if name else ''}".lstrip("/"))
    client.put_object(Bucket=bucket, Key=keys[-1], Body=b"")
    return keys

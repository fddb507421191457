"""An S3 server on loopback for tests: moto in server mode, reached through real boto3 / s3fs HTTP calls.

``s3_server`` (pytest fixture: ``from hvbuyer_tests.s3 import s3_server``) starts one
:class:`moto.server.ThreadedMotoServer` on ``127.0.0.1`` and a free port per test and sets fake credentials
and ``AWS_ENDPOINT_URL_S3`` in the environment for the duration of the test.
"""

from __future__ import annotations

import logging
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "hvbuyer-test",
    "AWS_SECRET_ACCESS_KEY": "hvbuyer-test-secret",
    "AWS_SESSION_TOKEN": "hvbuyer-test-token",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Server:
    """A running loopback S3 endpoint."""

    endpoint_url: str

    def client(self) -> Any:
        """A boto3 S3 client bound to this endpoint."""
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=FAKE_CREDENTIALS["AWS_DEFAULT_REGION"])

    def create_bucket(self, bucket: str) -> None:
        self.client().create_bucket(Bucket=bucket)

    def upload(self, local: Path, bucket: str, key: str, arrived_at: str | None = None) -> None:
        """Upload one file with boto3 (a real PUT over HTTP); ``arrived_at`` (ISO 8601) is declared as its arrival
        (user metadata ``arrived-at``, ``core.drops.ARRIVAL_KEY``) instead of the upload time."""
        extra = None if arrived_at is None else {"Metadata": {"arrived-at": arrived_at}}
        self.client().upload_file(str(local), bucket, key, ExtraArgs=extra)

    def put(self, bucket: str, key: str, body: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=body)

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        listing = self.client().list_objects_v2(Bucket=bucket, Prefix=prefix)
        return sorted(obj["Key"] for obj in listing.get("Contents", []))


@pytest.fixture
def s3_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Server]:
    """A moto S3 server on 127.0.0.1 (free port), with fake credentials and ``AWS_ENDPOINT_URL_S3`` set."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request in test output
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its buckets in process-wide backends: start every test with an empty S3
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"), timeout=30).close()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    try:
        yield S3Server(endpoint)
    finally:
        server.stop()

"""Shared fixtures: one Spark session and one moto server per test session (both are slow to start)."""

from __future__ import annotations

import os
import sys

import pytest

# PyFlink's Python workers start `python` from PATH: make sure it is this interpreter.
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="session")
def spark():
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("demand-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """One moto server on 127.0.0.1 and a free port for the session; yields its endpoint URL."""
    import logging

    from moto.server import ThreadedMotoServer

    from local_stack.kinesis import patch_moto_kinesis

    patch_moto_kinesis()  # as the local stack's server does
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per request otherwise
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def settings(moto_server, tmp_path, request):
    """Settings on the session's moto server with a prefix of this test's own, so tests never collide."""
    import re
    import uuid

    from core.settings import Settings

    name = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:18]
    prefix = f"t{uuid.uuid4().hex[:6]}-{name}".rstrip("-")
    return Settings(endpoint_url=moto_server, data_root=tmp_path, prefix=prefix)

"""boto3 clients for the configured endpoint: AWS, LocalStack or the local moto server alike."""

from __future__ import annotations

import os
import socket
from urllib.parse import urlparse

import boto3
from botocore.config import Config

from core.settings import Settings

# Retries of our own (with jitter) happen where batches partially fail; botocore's standard mode
# covers throttled control-plane calls.
_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


def endpoint(settings: Settings) -> str | None:
    """Explicit setting first, then the standard AWS_ENDPOINT_URL; None means real AWS."""
    return settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def client(service: str, settings: Settings, **kwargs):
    url = endpoint(settings)
    if url and not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
        # moto and LocalStack accept any credentials; never needed on AWS.
        kwargs.setdefault("aws_access_key_id", "testing")
        kwargs.setdefault("aws_secret_access_key", "testing")
    return boto3.client(
        service, region_name=settings.region, endpoint_url=url, config=kwargs.pop("config", _CONFIG), **kwargs
    )


def answers(settings: Settings) -> bool:
    """Whether the AWS APIs can be reached: always on AWS or a remote endpoint; a loopback endpoint (the local
    stack) only while something listens on its port."""
    url = urlparse(endpoint(settings) or "")
    if not url.hostname or url.hostname not in ("127.0.0.1", "localhost"):
        return True
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((url.hostname, url.port or 80)) == 0

"""boto3 clients for the configured endpoint: AWS, LocalStack or the local moto server alike."""

from __future__ import annotations

import os

import boto3
from botocore.config import Config

# Retries of our own (with jitter) happen where batches partially fail; botocore's standard mode
# covers throttled control-plane calls.
_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=30)


def endpoint(settings) -> str | None:
    """Explicit setting first, then the standard AWS_ENDPOINT_URL; None means real AWS."""
    return settings.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def client(service: str, settings, **kwargs):
    url = endpoint(settings)
    if url and not os.environ.get("AWS_ACCESS_KEY_ID") and not os.environ.get("AWS_PROFILE"):
        # moto and LocalStack accept any credentials; never needed on AWS.
        kwargs.setdefault("aws_access_key_id", "testing")
        kwargs.setdefault("aws_secret_access_key", "testing")
    return boto3.client(
        service, region_name=settings.region, endpoint_url=url, config=kwargs.pop("config", _CONFIG), **kwargs
    )

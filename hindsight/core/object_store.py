"""S3 for every location several machines share: one home for the endpoint, region and credentials.

`offline_store`, `registry` and `serving.sample_log` in hindsight.yml may be `s3://bucket/prefix`.
Three clients then reach the same bucket, and each is configured here from one `S3Config`:
- boto3 (registry files, contracts): `S3Config.client()`;
- delta-rs (Delta reads and writes): `S3Config.delta_options()`, its `storage_options`;
- DuckDB (delta_scan in dbt and training sets): `S3Config.duckdb_secret()`, the values of a
  `CREATE SECRET` (hindsight.offline_store.duckdb_delta runs it).

Credentials are never a Hindsight setting: boto3 and delta-rs each follow AWS's normal chain
(AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, web identity, instance roles).
DuckDB has no such chain without another extension, so it gets the credentials boto3 resolved.
The endpoint of an S3-compatible store (MinIO, Ceph, moto) is `s3.endpoint_url` in hindsight.yml
(HINDSIGHT_S3_ENDPOINT_URL), else AWS's own AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from hindsight.core.settings import Settings

_S3_URI = re.compile(r"^s3a?://([^/]+)/?(.*)$")


class ObjectStoreError(RuntimeError):
    """S3 cannot be reached or refused a request; the message names the location and the fix."""


def is_s3(location: object) -> bool:
    """Whether `location` is an s3:// (or s3a://) URI.

    >>> is_s3("s3://bucket/store"), is_s3("/data/store"), is_s3(None)
    (True, False, False)
    """
    return isinstance(location, str) and _S3_URI.match(location) is not None


def split_s3(uri: str) -> tuple[str, str]:
    """(bucket, key prefix without slashes at either end) of an s3:// URI.

    >>> split_s3("s3://team-features/prod/registry/")
    ('team-features', 'prod/registry')

    Raises:
        ValueError: `uri` is not an s3:// URI.
    """
    found = _S3_URI.match(uri)
    if found is None:
        raise ValueError(f"not an s3:// URI: {uri!r} (expected s3://bucket/prefix)")
    return found.group(1), found.group(2).strip("/")


@dataclass(frozen=True)
class S3Config:
    """Where S3 is and which region its buckets are in; credentials come from AWS's chains."""

    #: An S3-compatible store's URL (http://127.0.0.1:9000); None: AWS itself.
    endpoint_url: str | None = None
    #: The buckets' region; None: whatever boto3's chain finds, else us-east-1.
    region: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings | None = None, environ: Mapping[str, str] | None = None) -> S3Config:
        """The project's `s3:` section, completed from AWS's own environment variables."""
        settings = settings or Settings.load()
        env = os.environ if environ is None else environ
        endpoint = settings.s3.endpoint_url or env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        region = settings.s3.region or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None
        return cls(endpoint_url=endpoint, region=region)

    def client(self) -> Any:
        """A boto3 S3 client (credentials: boto3's chain)."""
        import boto3
        from botocore.config import Config

        # Path-style addressing: S3-compatible stores on one host serve buckets under their path.
        style = {"addressing_style": "path"} if self.endpoint_url else {}
        return boto3.session.Session().client(
            "s3", endpoint_url=self.endpoint_url, region_name=self._region(),
            config=Config(s3=style, retries={"max_attempts": 5, "mode": "standard"}),
        )

    def delta_options(self) -> dict[str, str]:
        """delta-rs `storage_options` (credentials: delta-rs's own AWS chain).

        >>> S3Config("http://127.0.0.1:9000", "eu-west-1").delta_options()["AWS_ALLOW_HTTP"]
        'true'
        """
        options = {"AWS_REGION": self._region()}
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            options["AWS_ALLOW_HTTP"] = str(self.endpoint_url.startswith("http://")).lower()
            # S3-compatible stores serve buckets under their path; AWS prefers virtual hosts.
            options["AWS_VIRTUAL_HOSTED_STYLE_REQUEST"] = "false"
        # No locking provider and no AWS_S3_ALLOW_UNSAFE_RENAME: delta-rs 1.x creates each commit
        # file with a conditional PUT (If-None-Match), so two writers of one table (two dbt runs,
        # serving workers appending samples) never both commit version N
        # (https://github.com/delta-io/delta-rs/discussions/4482). The store must support
        # conditional writes: AWS S3 since 2024, MinIO, moto.
        return options

    def duckdb_secret(self) -> dict[str, str | bool]:
        """The parameters of DuckDB's `CREATE SECRET (TYPE s3, ...)`, with the credentials boto3
        resolves now (temporary credentials expire: call this per connection, not once per process).

        Raises:
            ObjectStoreError: boto3's chain finds no credentials.
        """
        import boto3

        credentials = boto3.session.Session().get_credentials()
        if credentials is None:
            raise ObjectStoreError(
                "no AWS credentials for S3: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE, "
                "or run where an instance or container role applies"
            )
        frozen = credentials.get_frozen_credentials()
        secret: dict[str, str | bool] = {"KEY_ID": frozen.access_key, "SECRET": frozen.secret_key, "REGION": self._region()}
        if frozen.token:
            secret["SESSION_TOKEN"] = frozen.token
        if self.endpoint_url:
            url = urlsplit(self.endpoint_url)
            secret.update(ENDPOINT=url.netloc, USE_SSL=url.scheme == "https", URL_STYLE="path")
        return secret

    def _region(self) -> str:
        if self.region:
            return self.region
        import boto3

        return boto3.session.Session().region_name or "us-east-1"


def delta_storage_options(uri: object, settings: Settings | None = None) -> dict[str, str] | None:
    """delta-rs `storage_options` for a table at `uri`: None for a local path (delta-rs's defaults).

    >>> delta_storage_options("/data/offline_store/user_profile") is None
    True
    """
    return S3Config.from_settings(settings).delta_options() if is_s3(uri) else None

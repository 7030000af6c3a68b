"""A small Python client of the serving API, for models and notebooks.

    client = HindsightClient("http://127.0.0.1:8080", api_key="hsk_...")  # or $HINDSIGHT_API_KEY
    client.get_features({"user_id": 12, "merchant_id": 7}, feature_service="fraud_detection",
                        request_context={"amount": 99.5, "country": "FR"})["features"]

One keep-alive `requests.Session` per client; errors the server answers raise `HindsightError`
with its code and message (401 `unauthorized` without a valid key, 403 `forbidden` when the key
does not cover the service or views asked for).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

EntityRow = Mapping[str, Any]

#: Where the client finds its API key when none is passed.
API_KEY_ENV = "HINDSIGHT_API_KEY"


class HindsightError(Exception):
    """The server answered an error, or could not be reached (`status` 0, code `unreachable`)."""

    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(f"{status} {code}: {message}" if status else f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}


class HindsightClient:
    """Reads online features from a Hindsight serving API.

    Args:
        url: the server's base URL.
        timeout: seconds to wait for each response (connect and read).
        session: a `requests.Session` to use (default: a new one; connections are kept alive).
        api_key: the key sent as `Authorization: Bearer <key>` (default: $HINDSIGHT_API_KEY; none
            for a server started with --no-auth).
    """

    def __init__(
        self, url: str = "http://127.0.0.1:8080", timeout: float = 5.0, session: requests.Session | None = None,
        api_key: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._session = session or requests.Session()
        key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
        # Per request, not on the session: a session passed in may be shared with other code.
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}

    def __repr__(self) -> str:
        # Never the key: reprs end up in logs and notebooks.
        return f"HindsightClient({self.url!r}, api_key={'<set>' if self._headers else None})"

    def get_features(
        self,
        entities: EntityRow,
        feature_service: str | None = None,
        features: Sequence[str] | None = None,
        request_context: Mapping[str, Any] | None = None,
        include_metadata: bool = False,
        latency_budget_ms: float | None = None,
    ) -> dict[str, Any]:
        """Features of one entity row: `{"features": {...}}` plus `"metadata"` when asked.

        Name either `feature_service` or `features` ("view:feature", "view:*").

        Raises:
            HindsightError: the server answered an error (unknown service, missing join key, ...).
        """
        body = _body(entities, feature_service, features, request_context, include_metadata, latency_budget_ms)
        return self._request("POST", "/v1/features", body)

    def get_features_batch(
        self,
        entities: Sequence[EntityRow],
        feature_service: str | None = None,
        features: Sequence[str] | None = None,
        request_context: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
        include_metadata: bool = False,
        latency_budget_ms: float | None = None,
    ) -> list[dict[str, Any]]:
        """Features of several entity rows, one result per row, in order.

        `request_context` is one object for every row or a list with one per row.

        Raises:
            HindsightError: the server answered an error (413 `batch_too_large` past its row limit).
        """
        context = request_context
        if context is not None and not isinstance(context, Mapping):
            context = list(context)
        body = _body(list(entities), feature_service, features, context, include_metadata, latency_budget_ms)
        return self._request("POST", "/v1/features", body)["results"]

    def feature_services(self) -> list[dict[str, Any]]:
        """Summaries of the server's feature services."""
        return self._request("GET", "/v1/feature-services")["feature_services"]

    def feature_service(self, name: str) -> dict[str, Any]:
        """One service's schema: features with types, join keys, request fields."""
        return self._request("GET", f"/v1/feature-services/{quote(name, safe='')}")

    def ready(self) -> bool:
        """Whether the server answers and reaches its online store."""
        try:
            self._request("GET", "/readyz")
        except HindsightError:
            return False
        return True

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> HindsightClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            response = self._session.request(method, self.url + path, json=body, timeout=self.timeout,
                                             headers=self._headers)
        except requests.RequestException as error:
            raise HindsightError(0, "unreachable", f"cannot reach {self.url}: {error}") from error
        if response.status_code >= 400:
            raise _error(response)
        return response.json()


def _body(entities: Any, service: str | None, features: Sequence[str] | None, context: Any,
          include_metadata: bool, budget: float | None) -> dict[str, Any]:
    if (service is None) == (features is None):
        raise ValueError("name exactly one of feature_service or features")
    body: dict[str, Any] = {"entities": entities}
    if service is not None:
        body["feature_service"] = service
    else:
        body["features"] = list(features or ())
    if context is not None:
        body["request_context"] = context
    if include_metadata:
        body["include_metadata"] = True
    if budget is not None:
        body["latency_budget_ms"] = budget
    return body


def _error(response: requests.Response) -> HindsightError:
    try:
        error = response.json()["error"]
        return HindsightError(response.status_code, error["code"], error["message"], error.get("details"))
    except (ValueError, KeyError, TypeError):
        text = response.text[:200].strip() or response.reason
        return HindsightError(response.status_code, f"http_{response.status_code}", text)

"""A small Python client of the serving API, for models and notebooks.

    client = HindsightClient("http://127.0.0.1:8080", api_key="hsk_...")  # or $HINDSIGHT_API_KEY
    client.get_features({"user_id": 12, "merchant_id": 7}, feature_service="fraud_detection",
                        request_context={"amount": 99.5, "country": "FR"})["features"]

It also writes, with a key created with `--write`:

    client.ingest("streams.transactions", [{"transaction_id": "t-1", "user_id": 12, ...}])
    client.push("user_profile", dataframe)

One keep-alive `requests.Session` per client; errors the server answers raise `HindsightError`
with its code and message (401 `unauthorized` without a valid key, 403 `forbidden` when the key
does not cover the service or views asked for).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import requests

EntityRow = Mapping[str, Any]

#: Where the client finds its API key when none is passed.
API_KEY_ENV = "HINDSIGHT_API_KEY"
#: Rows per request of `ingest` and `push` (the server accepts 1,000 by default).
DEFAULT_WRITE_BATCH = 500


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

    def ingest(self, source: str, rows: Any, batch_size: int = DEFAULT_WRITE_BATCH) -> dict[str, Any]:
        """Send events of a stream source (`POST /v1/ingest`), `batch_size` rows per request.

        Args:
            source: "streams.transactions", or its table name when unique.
            rows: a list of dicts, a pandas DataFrame or an Arrow table; datetimes are sent as ISO-8601
                (naive ones as UTC).
            batch_size: rows per request (the server's limit is 1,000 by default).

        Returns:
            `{"source", "received", "accepted", "duplicates"}` summed over the requests. Every event
            counted is durable; retrying after an error is safe (an event id is counted once).

        Raises:
            HindsightError: the server refused a request (400 `invalid_row` names the field and row
                in `details`); the requests before it were written.
        """
        return self._write("/v1/ingest", "source", source, rows, batch_size)

    def push(self, view: str, rows: Any, batch_size: int = DEFAULT_WRITE_BATCH) -> dict[str, Any]:
        """Push rows to a feature view (`POST /v1/push`), `batch_size` rows per request.

        Returns:
            The push report (`view`, `rows`, `written`, `stale`, ...) summed over the requests.

        Raises:
            HindsightError: the server refused a request; the requests before it were written.
        """
        return self._write("/v1/push", "view", view, rows, batch_size)

    def _write(self, path: str, field: str, target: str, rows: Any, batch_size: int) -> dict[str, Any]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        records = json_rows(rows)
        if not records:
            raise ValueError("rows is empty: nothing to send")
        total: dict[str, Any] = {}
        for start in range(0, len(records), batch_size):
            report = self._request("POST", path, {field: target, "rows": records[start:start + batch_size]})
            for name, value in report.items():
                summable = isinstance(value, int) and not isinstance(value, bool)
                total[name] = total.get(name, 0) + value if summable else value
        return total

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


def json_rows(rows: Any) -> list[dict[str, Any]]:
    """Rows (dicts, a pandas DataFrame or an Arrow table) as JSON-ready dicts.

    >>> json_rows([{"ts": dt.datetime(2026, 11, 30, 12, 0), "amount": float("nan"), "n": 1}])
    [{'ts': '2026-11-30T12:00:00+00:00', 'amount': None, 'n': 1}]
    """
    if hasattr(rows, "to_pylist"):  # a pyarrow Table or RecordBatch
        records = rows.to_pylist()
    elif hasattr(rows, "columns") and hasattr(rows, "to_dict"):  # a pandas DataFrame
        import pyarrow as pa

        # Through Arrow: NaN and NaT become null, numpy scalars Python values.
        records = pa.Table.from_pandas(rows, preserve_index=False).to_pylist()
    elif isinstance(rows, Mapping) or not isinstance(rows, Iterable):
        raise TypeError(f"rows must be a list of dicts, a pandas DataFrame or an Arrow table, got {type(rows).__name__}")
    else:
        records = list(rows)
    return [{str(name): _json_value(value) for name, value in row.items()} for row in records]


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        if math.isnan(value):
            return None  # pandas' missing value (JSON has no NaN)
        raise ValueError(f"{value} cannot be sent: JSON has no infinities, and no column type holds one")
    return value


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

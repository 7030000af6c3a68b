"""JSON in and out of the API on the stdlib's C-accelerated paths.

Flask's default provider sorts keys and goes through a Python `default` on every response; the
hot path here encodes with one preconfigured `json.JSONEncoder` (C encoder, compact separators)
and parses request bodies with `json.loads` on the raw bytes.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import math
from typing import Any

from flask import Response


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        # DynamoDB numbers arrive as Decimal; integral ones stay integers in JSON.
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", "replace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "item"):  # numpy scalars, should an on-demand view return them
        return value.item()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_default)
_encode = _ENCODER.encode


def dumps(value: Any) -> str:
    """Compact JSON text; datetimes as ISO 8601, Decimals as numbers.

    >>> dumps({"a": 1, "b": [1.5, None]})
    '{"a":1,"b":[1.5,null]}'
    """
    return _encode(value)


def loads(data: bytes | str) -> Any:
    """Parse JSON text; raises `ValueError` (json.JSONDecodeError) on malformed input."""
    return json.loads(data)


def finite(value: Any) -> Any:
    """The value, with NaN and infinities replaced by None (JSON has no NaN).

    >>> finite(float("nan")) is None, finite(2.5)
    (True, 2.5)
    """
    if value.__class__ is float and not math.isfinite(value):
        return None
    return value


def response(body: Any, status: int = 200) -> Response:
    """A JSON response with `body` encoded by the fast encoder."""
    return Response(_encode(body), status=status, mimetype="application/json")

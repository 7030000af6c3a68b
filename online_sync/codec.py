"""How feature values, entity keys and event order are written as DynamoDB attributes.

Values are encoded by the feature's registry dtype and decoded by it, so a value keeps its type:
ints and decimals as numbers, floats as numbers (NaN, infinities and floats outside DynamoDB's number
range as their `repr` in a string), timestamps as epoch microseconds, dates as ISO strings, bools as
BOOL. None is never written: the attribute is simply absent.

The low-level client's wire format (`{"N": "12"}`) is built by hand: boto3's TypeSerializer is
several times slower and the read path is latency-sensitive.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import struct
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

#: Partition key: the entity's join-key values (see `entity_key`).
KEY_ATTR = "_hs_key"
#: Sort key: which writer owns the item ("sync", "push"; "state"/"lock" for sync bookkeeping).
WRITER_ATTR = "_hs_writer"
#: Event order of the item's row: (event time, created time) packed into one number (`order_key`).
ORDER_ATTR = "_hs_order"
#: DynamoDB's TTL attribute: event time + the view's ttl, in epoch seconds.
EXPIRES_ATTR = "_hs_expires"
#: Optimistic concurrency of items that more than one writer updates in place (a stream-fed
#: aggregation view's tiles): a counter each conditional write checks and increments.
VERSION_ATTR = "_hs_version"
#: Feature names may not start with this: the item's own attributes do.
RESERVED_PREFIX = "_hs_"

SYNC_WRITER = "sync"
PUSH_WRITER = "push"

# Two int64 microsecond timestamps packed into one DynamoDB number (38 significant digits):
# (event + OFFSET) * SCALE + (created + OFFSET). Any datetime (years 1-9999) is within +-2.6e17 us,
# so each shifted part lies in (0, 1.3e18) < SCALE and the packed value stays below 1.3e37.
_OFFSET = 10**18
_SCALE = 10**19
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
# DynamoDB numbers hold magnitudes in [1e-130, 1e126); other floats go in a string.
_MIN_NUMBER = 1e-130
_MAX_NUMBER = 1e126
MAX_ITEM_BYTES = 400 * 1024


class ItemTooLarge(ValueError):
    """An item over DynamoDB's 400 KB limit: DynamoDB would reject its whole batch."""


def order_key(event_us: int, created_us: int | None) -> int:
    """Pack (event time, created time) into one number that sorts like the pair.

    A row without a created time sorts before any row with one at the same event time.

    >>> order_key(0, None) < order_key(0, -5) < order_key(0, 3) < order_key(1, None)
    True
    >>> event_micros(order_key(1_700_000_000_000_000, 42))
    1700000000000000
    """
    created_part = 0 if created_us is None else created_us + _OFFSET
    return (event_us + _OFFSET) * _SCALE + created_part


def event_micros(order: int) -> int:
    """The event time (epoch microseconds) packed in an `order_key`."""
    return order // _SCALE - _OFFSET


def micros_to_datetime(micros: int) -> dt.datetime:
    """Epoch microseconds as an aware UTC datetime.

    >>> micros_to_datetime(86_400_000_001).isoformat()
    '1970-01-02T00:00:00.000001+00:00'
    """
    return _EPOCH + dt.timedelta(microseconds=micros)


def to_micros(value: Any) -> int:
    """A timestamp (aware or naive-UTC datetime, ISO string, or epoch micros) as epoch micros.

    >>> to_micros("1970-01-01T00:00:01Z")
    1000000
    """
    if isinstance(value, bool):
        raise TypeError(f"expected a timestamp, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if hasattr(value, "to_pydatetime"):  # pandas.Timestamp
        return to_micros(value.to_pydatetime())
    raise TypeError(f"expected a timestamp (datetime, ISO string or epoch micros), got {value!r}")


def _key_text(value: Any) -> str:
    if value is None:
        raise ValueError("a join key value is null")
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        # JSON clients and pandas turn integer ids into floats (12.0): same entity as 12.
        return str(int(value))
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    return str(value)


def entity_key(values: Sequence[Any]) -> str:
    """The partition key of one entity: its join-key values as text.

    Keys compare by their text form, so the id 12 and the string "12" name the same entity (a JSON
    client cannot always tell them apart). Several join keys are JSON-encoded, which is unambiguous.

    >>> entity_key([12])
    '12'
    >>> entity_key([12, "FR"])
    '["12","FR"]'
    """
    if len(values) == 1:
        return _key_text(values[0])
    return json.dumps([_key_text(v) for v in values], separators=(",", ":"))


# ---------------------------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------------------------


def _encode_float(value: Any) -> dict[str, str]:
    number = float(value)
    if _MIN_NUMBER <= abs(number) < _MAX_NUMBER:
        return {"N": repr(number)}
    if number == 0.0:
        # DynamoDB normalises the number -0.0 to 0: keep the sign in a string.
        return {"N": "0"} if math.copysign(1.0, number) > 0 else {"S": "-0.0"}
    # NaN, +-inf and out-of-range magnitudes: float() reads these strings back exactly.
    return {"S": repr(number) if math.isfinite(number) else str(number).replace("inf", "Infinity")}


def _encode_float32(value: Any) -> dict[str, str]:
    # Round to float32 first, so a pushed 0.1 is stored as the 0.10000000149011612 that a float32
    # Delta column (and so a sync) holds: the same event reads back the same from either writer.
    try:
        narrowed = struct.unpack("f", struct.pack("f", float(value)))[0]
    except OverflowError:
        narrowed = math.copysign(math.inf, float(value))
    return _encode_float(narrowed)


def _encode_decimal(value: Any) -> dict[str, str]:
    number = value if isinstance(value, Decimal) else Decimal(str(value))
    if number.is_finite() and len(number.as_tuple().digits) <= 38:
        return {"N": str(number)}
    return {"S": str(number)}


def _encode_date(value: Any) -> dict[str, str]:
    if isinstance(value, dt.datetime):
        value = value.date()
    return {"S": value if isinstance(value, str) else value.isoformat()}


def _encode_any(value: Any) -> dict[str, Any]:
    """Encode by Python type, for dtypes the registry does not name."""
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        return _encode_float(value)
    if isinstance(value, Decimal):
        return _encode_decimal(value)
    if isinstance(value, dt.datetime):
        return {"N": str(to_micros(value))}
    if isinstance(value, dt.date):
        return {"S": value.isoformat()}
    return {"S": str(value)}


_ENCODERS: dict[str, Callable[[Any], dict[str, Any]]] = {
    "bool": lambda v: {"BOOL": bool(v)},
    "int32": lambda v: {"N": str(int(v))},
    "int64": lambda v: {"N": str(int(v))},
    "float32": _encode_float32,
    "float64": _encode_float,
    "string": lambda v: {"S": str(v)},
    "date": _encode_date,
    "timestamp": lambda v: {"N": str(to_micros(v))},
    "decimal": _encode_decimal,
}


def _decode_float(attr: dict[str, str]) -> float:
    return float(attr["N"] if "N" in attr else attr["S"])


def _decode_any(attr: dict[str, Any]) -> Any:
    if "BOOL" in attr:
        return attr["BOOL"]
    if "N" in attr:
        text = attr["N"]
        return int(text) if text.lstrip("-").isdigit() else float(text)
    return attr.get("S")


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "bool": lambda a: a["BOOL"],
    "int32": lambda a: int(a["N"]),
    "int64": lambda a: int(a["N"]),
    "float32": _decode_float,
    "float64": _decode_float,
    "string": lambda a: a["S"],
    "date": lambda a: dt.date.fromisoformat(a["S"]),
    "timestamp": lambda a: micros_to_datetime(int(a["N"])),
    "decimal": lambda a: Decimal(a["N"] if "N" in a else a["S"]),
}


def encoder(dtype: str) -> Callable[[Any], dict[str, Any]]:
    """The function that turns a non-null value of `dtype` into a DynamoDB attribute value."""
    return _ENCODERS.get(dtype, _encode_any)


def decoder(dtype: str) -> Callable[[dict[str, Any]], Any]:
    """The function that turns a DynamoDB attribute value back into a value of `dtype`."""
    return _DECODERS.get(dtype, _decode_any)


def check_item_size(item: dict[str, dict[str, Any]], where: str) -> None:
    """Raise ItemTooLarge when an item would exceed DynamoDB's 400 KB item limit.

    Only strings can get that big, so the exact UTF-8 size is computed only when the cheap
    character count comes near the limit.
    """
    rough = sum(len(name) + len(next(iter(value.values())).__str__()) for name, value in item.items())
    if rough * 4 < MAX_ITEM_BYTES:
        return
    size = sum(
        len(name.encode()) + len(str(next(iter(value.values()))).encode()) for name, value in item.items()
    )
    if size > MAX_ITEM_BYTES:
        raise ItemTooLarge(
            f"{where}: the online item is {size:,} bytes, over DynamoDB's 400 KB ({MAX_ITEM_BYTES:,}-byte) item "
            "limit; shorten its string features or keep them offline (online: false)"
        )

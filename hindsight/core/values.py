"""What a value of each registry type may be, and the nearest valid value when it is not.

One rule for every way data comes in: the ingest API and stream consumers (`streams.validation`),
pushed rows (`online_sync.push`) and feature requests (`serving.parsing`, for its type errors).
`converter(dtype)` checks one non-null value and returns it as Arrow takes it; anything else raises
`ValueProblem` with the problem and the nearest valid value:

- integers: ints, integral floats (JSON clients and pandas send 12.0 for 12), in range; not bools
  and not text ("12" is refused, naming 12);
- floats: numbers (a feature value may be NaN or infinite; the ingest API refuses those in events);
- decimals: numbers or text, at most the column's scale;
- timestamps: datetimes or ISO-8601 text (without an offset: UTC); not numbers (their unit is a
  guess, named as the nearest value); dates: dates or ISO text;
- booleans: true/false only; strings: text only.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pyarrow as pa

from hindsight.core.arrow_types import ARROW_TYPES

_UTC = dt.timezone.utc
_INT_RANGE = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}


class ValueProblem(ValueError):
    """A value that is not one of its type: the problem and the nearest valid value (text, or None)."""

    def __init__(self, problem: str, nearest: str | None = None) -> None:
        super().__init__(problem)
        self.problem, self.nearest = problem, nearest


def describe(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _epoch_guess(number: Any) -> str | None:
    """An epoch number as the ISO timestamp it most likely means (seconds, ms or us)."""
    magnitude = abs(float(number))
    scale = 1 if magnitude < 1e11 else (1e3 if magnitude < 1e14 else 1e6)
    try:
        moment = dt.datetime.fromtimestamp(number / scale, _UTC)
    except (OverflowError, OSError, ValueError):
        return None
    unit = {1: "epoch seconds", 1e3: "epoch milliseconds", 1e6: "epoch microseconds"}[scale]
    return f"{moment.isoformat()!r} (if {number!r} is in {unit})"


def _timestamp(value: Any) -> dt.datetime:
    if isinstance(value, str):
        text = value.strip()
        try:
            moment = dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
        except ValueError:
            raise ValueProblem(f"expected an ISO-8601 timestamp, got {value!r}", "'2026-11-30T17:00:00+00:00'") from None
        return moment.replace(tzinfo=_UTC) if moment.tzinfo is None else moment.astimezone(_UTC)
    if hasattr(value, "to_pydatetime") and not isinstance(value, dt.datetime):  # pandas.Timestamp
        value = value.to_pydatetime()
    if isinstance(value, np.datetime64):
        value = value.astype("datetime64[us]").astype(dt.datetime)
    if isinstance(value, dt.datetime):
        return value.replace(tzinfo=_UTC) if value.tzinfo is None else value.astimezone(_UTC)
    if isinstance(value, dt.date):
        raise ValueProblem(f"expected a timestamp, got the date {value.isoformat()!r}",
                   repr(dt.datetime.combine(value, dt.time(), _UTC).isoformat()))
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        raise ValueProblem(f"expected an ISO-8601 timestamp, got the number {value!r}", _epoch_guess(value))
    raise ValueProblem(f"expected a timestamp, got {describe(value)}", "'2026-11-30T17:00:00+00:00'")


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        raise ValueProblem(f"expected a date, got the timestamp {value.isoformat()!r}", repr(value.date().isoformat()))
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            try:
                return _date(_timestamp(value))
            except ValueProblem:
                raise ValueProblem(f"expected an ISO date (YYYY-MM-DD), got {value!r}", "'2026-11-30'") from None
    raise ValueProblem(f"expected a date, got {describe(value)}", "'2026-11-30'")


def _integer(value: Any, dtype: str) -> int:
    if isinstance(value, (bool, np.bool_)):
        raise ValueProblem(f"expected an integer ({dtype}), got {value!r}", str(int(value)))
    if isinstance(value, (int, np.integer)):
        number = int(value)
    elif isinstance(value, (float, np.floating, Decimal)) and math.isfinite(value) and value == int(value):
        number = int(value)  # JSON clients and pandas send 12.0 for 12
    elif isinstance(value, (float, np.floating, Decimal)):
        nearest = str(round(value)) if math.isfinite(value) else None
        raise ValueProblem(f"expected an integer ({dtype}), got {value!r}", nearest)
    elif isinstance(value, str):
        try:
            nearest = str(int(Decimal(value.strip())))
        except (InvalidOperation, ValueError):
            nearest = None
        raise ValueProblem(f"expected an integer ({dtype}), got the text {value!r}", nearest)
    else:
        raise ValueProblem(f"expected an integer ({dtype}), got {describe(value)}")
    low, high = _INT_RANGE[dtype]
    if not low <= number <= high:
        raise ValueProblem(f"{number} is out of the {dtype} range [{low}, {high}]", str(max(low, min(high, number))))
    return number


def _float(value: Any, dtype: str) -> float:
    if isinstance(value, (bool, np.bool_)):
        raise ValueProblem(f"expected a number ({dtype}), got {value!r}", str(float(value)))
    if isinstance(value, (int, float, np.integer, np.floating, Decimal)):
        try:
            return float(value)
        except OverflowError:  # an int beyond float's range
            raise ValueProblem(f"expected a number ({dtype}), got an integer beyond its range") from None
    if isinstance(value, str):
        try:
            parsed = float(value.strip())
            nearest = repr(parsed) if math.isfinite(parsed) else None
        except ValueError:
            nearest = None
        raise ValueProblem(f"expected a number ({dtype}), got the text {value!r}", nearest)
    raise ValueProblem(f"expected a number ({dtype}), got {describe(value)}")


def _decimal(value: Any, scale: int) -> Decimal:
    if isinstance(value, (bool, np.bool_)):
        raise ValueProblem(f"expected a decimal, got {value!r}")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueProblem(f"expected a decimal, got {describe(value)}", "'12.50'") from None
    if not number.is_finite():
        raise ValueProblem(f"expected a finite decimal, got {value!r}")
    quantum = Decimal(1).scaleb(-scale)
    if number != number.quantize(quantum):
        raise ValueProblem(f"{value!r} has more than {scale} decimal places", repr(str(number.quantize(quantum))))
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    nearest = None
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        nearest = value.strip().lower()
    elif isinstance(value, (int, np.integer)) and value in (0, 1):
        nearest = "true" if value else "false"
    raise ValueProblem(f"expected a boolean, got {describe(value)}", nearest)


def _string(value: Any) -> str:
    if isinstance(value, str):
        return value
    nearest = None if isinstance(value, (dict, list)) else repr(str(value))
    raise ValueProblem(f"expected text (string), got {describe(value)}", nearest)


def converter(dtype: str, arrow_type: pa.DataType | None = None) -> Any:
    """The function checking and converting one non-null value of registry type `dtype`.

    It returns the value as Arrow takes it for `arrow_type` (default: `ARROW_TYPES[dtype]`) and
    raises ValueProblem for anything else.
    """
    arrow_type = arrow_type or ARROW_TYPES[dtype]
    if dtype in _INT_RANGE:
        return lambda v: _integer(v, dtype)
    if dtype in ("float32", "float64"):
        return lambda v: _float(v, dtype)
    if dtype == "decimal":
        return lambda v: _decimal(v, arrow_type.scale)
    return {"timestamp": _timestamp, "date": _date, "bool": _bool, "string": _string}[dtype]


def nearest_valid(value: Any, dtype: str) -> str | None:
    """The nearest valid value of registry type `dtype` to `value`, as text; None if `value` is valid or has none.

    The rule every API names in its type errors: ingest (`streams.validation`), push
    (`online_sync.push`) and feature requests (`serving.parsing`).

    >>> nearest_valid("12", "int64"), nearest_valid(12, "string"), nearest_valid(2.5, "int64")
    ('12', "'12'", '2')
    >>> nearest_valid(12, "int64") is None, nearest_valid("twelve", "int64") is None
    (True, True)
    """
    try:
        converter(dtype)(value)
    except ValueProblem as bad:
        return bad.nearest
    return None

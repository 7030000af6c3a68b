"""The registry's feature types and their Arrow counterparts, both ways.

Feature types are named engine-neutrally (`registry_sync.model.FEATURE_TYPES`); Delta tables, on-demand
outputs and test tables use the Arrow type each name stands for.
"""

from __future__ import annotations

import pyarrow as pa

from hindsight.core.arrow_types import ARROW_TYPES  # noqa: F401  (re-exported: its older home)


def arrow_type_name(dtype: pa.DataType) -> str:
    """The registry's name for an Arrow type.

    >>> arrow_type_name(pa.timestamp("us", tz="UTC"))
    'timestamp'
    """
    checks = [
        (pa.types.is_boolean, "bool"),
        (lambda t: pa.types.is_integer(t) and t.bit_width <= 32, "int32"),
        (pa.types.is_integer, "int64"),
        (lambda t: pa.types.is_floating(t) and t.bit_width <= 32, "float32"),
        (pa.types.is_floating, "float64"),
        (lambda t: pa.types.is_string(t) or pa.types.is_large_string(t), "string"),
        (pa.types.is_date, "date"),
        (pa.types.is_timestamp, "timestamp"),
        (pa.types.is_decimal, "decimal"),
    ]
    for check, name in checks:
        if check(dtype):
            return name
    return str(dtype)

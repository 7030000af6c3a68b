"""The Arrow type each registry feature type stands for (the names in registry_sync.model.FEATURE_TYPES).

A leaf so that both the registry (feature views) and the offline store (the event logs' schema)
read one mapping.
"""

from __future__ import annotations

import pyarrow as pa

#: Registry dtype -> the Arrow type a column of it has (decimals keep their table's precision).
ARROW_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "string": pa.string(),
    "date": pa.date32(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "decimal": pa.decimal128(20, 4),
}

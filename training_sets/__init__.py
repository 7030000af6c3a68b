"""Training sets: point-in-time correct features for a spine of (entity keys, event time, labels).

Owns the point-in-time join, built as one sqlglot AST per dialect (`sql`: ASOF on DuckDB, a
window timeline on Spark), its execution (`engine`: DuckDB in process, Spark over Spark Connect),
spine checks (`spine`), feature selection and naming (`selection`, `plan`), on-demand views after
the join (`on_demand_step`) and the SDK (`api`: `training_set`, `features_as_of`).

Reads the registry (`registry_sync`), the feature views' Delta tables (at pinned versions) and the
caller's spine; writes nothing but what it returns (the CLI writes the Parquet file it is told to).
"""

from hindsight.training_sets.api import (
    features_as_of,
    read_registry_version,
    read_versions,
    training_set,
    training_set_sql,
)
from hindsight.training_sets.errors import TrainingSetError
from hindsight.training_sets.sql import DIALECTS, SpineSpec, ViewRequest, point_in_time_query

__all__ = [
    "DIALECTS",
    "SpineSpec",
    "TrainingSetError",
    "ViewRequest",
    "features_as_of",
    "point_in_time_query",
    "read_registry_version",
    "read_versions",
    "training_set",
    "training_set_sql",
]

"""Where a Delta table is: the one rule that makes a table location absolute.

The dbt-duckdb plugin writes, the registry records, training sets and the online sync read the
same table, and a Spark server does not share our working directory: all of them pass a location
through `absolute_uri`, so one table never goes by two names.
"""

from __future__ import annotations

import os


def absolute_uri(uri: str, base: str | os.PathLike[str] | None = None) -> str:
    """A local path (or `file://` URI) as an absolute path; any other URI as given.

    Relative paths are taken from `base`, by default the working directory (where dbt runs).

    >>> absolute_uri("s3://bucket/features/x")
    's3://bucket/features/x'
    >>> absolute_uri("file:///data/offline_store/x")
    '/data/offline_store/x'
    >>> absolute_uri("/data/offline_store/../offline_store/x")
    '/data/offline_store/x'
    >>> absolute_uri("data/offline_store/x", base="/project")
    '/project/data/offline_store/x'
    """
    if "://" in uri and not uri.startswith("file://"):
        return uri
    path = uri.removeprefix("file://")
    return os.path.abspath(path if base is None else os.path.join(base, path))

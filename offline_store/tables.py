"""Opening a Delta table wherever it lives: a local path or S3, with the project's storage options.

Every reader (training sets, sync, validation, status, summaries) opens tables through `open_table`
so a table on S3 is reached with the endpoint and region of hindsight.yml's `s3:` section
(hindsight.core.object_store); a local path opens exactly as `DeltaTable(path)` does.
"""

from __future__ import annotations

from deltalake import DeltaTable

from hindsight.core.object_store import delta_storage_options

__all__ = ["delta_storage_options", "open_table"]


def open_table(uri: str, version: int | None = None) -> DeltaTable:
    """The Delta table at `uri` (at `version`, default the latest).

    Raises:
        deltalake.exceptions.TableNotFoundError: there is no Delta table at `uri`.
    """
    return DeltaTable(uri, version=version, storage_options=delta_storage_options(uri))

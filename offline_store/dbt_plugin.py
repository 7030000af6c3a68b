"""dbt-duckdb plugin: DuckDB reads Delta, and the `feature_view` materialization writes it.

Configured in profiles.yml (`plugins: [{module: hindsight.offline_store.dbt_plugin, alias: hindsight}]`).
On connect it loads DuckDB's delta extension from its wheel (`duckdb_delta`), so `delta_scan()`
works offline. The materialization stages the model's rows in DuckDB and calls
`adapter.store_relation('hindsight', ...)`; `Plugin.store` streams that relation as Arrow batches
into `offline_store.delta_writer`.
"""

from __future__ import annotations

from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from dbt.adapters.events.logging import AdapterLogger
from sqlglot import exp

from hindsight.offline_store.delta_writer import WriteRequest, write_feature_view
from hindsight.offline_store.duckdb_delta import load_delta_extension

logger = AdapterLogger("hindsight")

#: Rows per Arrow batch handed from DuckDB to delta-rs: bounds memory on large views.
BATCH_ROWS = 1_000_000


class Plugin(BasePlugin):
    """Delta for dbt-duckdb: the extension for reads, delta-rs for writes."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._storage_options = plugin_config.get("storage_options") or None

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        load_delta_extension(conn)
        self._conn = conn

    def store(self, target_config: TargetConfig) -> None:
        if self._conn is None:
            raise RuntimeError("the hindsight plugin has no DuckDB connection yet")
        config = dict(target_config.config)
        if self._storage_options and not config.get("storage_options"):
            config["storage_options"] = self._storage_options
        request = WriteRequest.from_config(config)
        cursor = self._conn.cursor()
        try:
            staged = exp.select("*").from_(exp.to_table(str(target_config.relation), dialect="duckdb"))
            relation = cursor.sql(staged.sql(dialect="duckdb"))
            result = write_feature_view(relation.to_arrow_reader(BATCH_ROWS), request)
        finally:
            cursor.close()
        for breach in result.allowed_breaches:
            logger.warning(
                f"hindsight: {request.model}: breaking change written because hindsight_allow_breaking "
                f"is set: {breach}; run `hindsight apply --allow-breaking` so the services' contracts follow"
            )
        logger.info(
            f"hindsight: {request.model} {request.mode}: {result.rows_written} rows, "
            f"delta version {result.version}{'' if result.committed else ' (nothing to commit)'}"
        )
        for notice in result.notices:
            logger.info(f"hindsight: {notice}")

"""dbt-duckdb plugin: DuckDB reads Delta, and the `feature_view` materialization writes it.

Configured in profiles.yml (`plugins: [{module: hindsight.offline_store.dbt_plugin, alias: hindsight}]`).
On connect it loads DuckDB's delta extension from its wheel (`duckdb_delta`), so `delta_scan()`
works offline, and, when the offline store is on S3, the httpfs extension and an S3 secret
(hindsight.core.object_store); writes then get delta-rs's storage options for S3 from there too.
The materialization stages the model's rows in DuckDB and calls
`adapter.store_relation('hindsight', ...)`; `Plugin.store` streams that relation as Arrow batches
into `offline_store.delta_writer`. The on-run-start hook `hindsight.register_stream_sources()`
calls it with `hindsight_event_log` set to create a stream source's empty event log
(`offline_store.event_log`).
"""

from __future__ import annotations

from typing import Any

import duckdb
from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import TargetConfig
from dbt.adapters.events.logging import AdapterLogger
from sqlglot import exp

from hindsight.core.object_store import S3Config, delta_storage_options, is_s3
from hindsight.core.config import ConfigError
from hindsight.core.settings import Settings
from hindsight.offline_store.delta_writer import WriteRequest, write_feature_view
from hindsight.offline_store.event_log import ensure_event_log, event_log_schema
from hindsight.offline_store.uris import absolute_uri
from hindsight.offline_store.duckdb_delta import enable_s3, load_delta_extension

logger = AdapterLogger("hindsight")

#: Rows per Arrow batch handed from DuckDB to delta-rs: bounds memory on large views.
BATCH_ROWS = 1_000_000


class Plugin(BasePlugin):
    """Delta for dbt-duckdb: the extension for reads, delta-rs for writes."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        self._conn: duckdb.DuckDBPyConnection | None = None
        self._storage_options = plugin_config.get("storage_options") or None
        # An offline store on S3: DuckDB's delta_scan (ref(), dbt tests) needs httpfs and a secret.
        # dbt runs in the project folder, where Settings finds hindsight.yml.
        try:
            settings = Settings.load()
        except ConfigError as error:
            from dbt_common.exceptions import DbtRuntimeError

            # dbt prints its own errors without a traceback; the message names the setting and the fix.
            raise DbtRuntimeError(f"hindsight: {error}") from None
        self._s3 = S3Config.from_settings(settings) if is_s3(settings.offline_store) else None

    def configure_connection(self, conn: duckdb.DuckDBPyConnection) -> None:
        load_delta_extension(conn)
        if self._s3 is not None:
            enable_s3(conn, self._s3)
        self._conn = conn

    def store(self, target_config: TargetConfig) -> None:
        if self._conn is None:
            raise RuntimeError("the hindsight plugin has no DuckDB connection yet")
        config = dict(target_config.config)
        if not config.get("storage_options"):
            config["storage_options"] = self._storage_options or delta_storage_options(config.get("uri"))
        if config.get("hindsight_event_log"):
            self._ensure_event_log(config)
            return
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

    def _ensure_event_log(self, config: dict[str, Any]) -> None:
        """Create a stream source's empty event log unless it exists (the relation is not read)."""
        from dbt_common.exceptions import DbtRuntimeError

        uri = absolute_uri(config["uri"])
        try:
            schema = event_log_schema([tuple(pair) for pair in config["columns"]])
            created = ensure_event_log(uri, schema, config.get("storage_options"))
        except ValueError as error:
            raise DbtRuntimeError(f"hindsight: stream source {config.get('source')}: {error}") from error
        if created:
            logger.info(f"hindsight: {config.get('source')}: created the empty event log at {uri}")

"""The offline store: feature views as Delta tables.

Owns how a feature view's rows reach Delta (`delta_writer`: full refresh, MERGE, range replace,
validation of schema changes, commit metadata) and the dbt-duckdb plugin that the `feature_view`
materialization calls (`dbt_plugin`). Reads a staged relation from DuckDB; writes Delta tables
under the offline store root (`HINDSIGHT_OFFLINE_STORE`), one per feature view.
On the spark target the Spark server writes the tables itself (macros/materializations/feature_view/
feature_view_spark.sql); `sail` runs Sail, a local Spark Connect server, for it (`hindsight spark`).
"""

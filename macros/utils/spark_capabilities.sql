{#-
  What the Spark Connect server behind the spark target can do, computed once per dbt command (one
  `select current_catalog()`, kept in run_cache()) and read by every spark__ macro:
    engine             'sail' (Sail, which names its catalog 'sail') or 'spark' (Apache Spark,
                       Databricks)
    staging            how a model's rows are staged before the checks and the write, so its SQL
                       runs once (feature_view_spark.sql):
                         'cache'  CACHE TABLE ... AS SELECT: computed once, kept by the executors
                         'table'  a Parquet table at a scratch location beside the view's table:
                                  Sail has no CACHE TABLE
    change_data_feed   Delta's change data feed can be enabled on write
    session_conf       SQL `SET spark.*` works (commit metadata of MERGE commits)
    add_columns        ALTER TABLE ADD COLUMNS works on a Delta table
    replace_schema     CREATE OR REPLACE TABLE replaces an existing Delta table's schema
    list_location      a file listing of a path that may not exist answers (with no rows) instead
                       of failing: a Delta table is found at its location without a catalog entry
    read_local_files   the server reads the dbt machine's files (the registry's contracts.jsonl)
    tile_prefix        how an aggregation view's tiles get their prefix aggregates:
                         'window'  window functions partitioned by (entity, interval)
                                   (aggregation_tiles)
                         'join'    a join within each interval, windows only for crowded
                                   intervals (aggregation_tiles_by_join): Sail pays a fixed cost
                                   per window partition, ~10x slower on 5-minute tiles
  Measured on Sail 0.7.2; Apache Spark's from its and Delta's documentation.
-#}
{% macro spark_capabilities() %}
  {%- set cache = hindsight.run_cache() -%}
  {%- if 'spark_capabilities' not in cache -%}
    {%- set catalog = run_query('select current_catalog()')[0][0] if execute else none -%}
    {%- do cache.update({'spark_capabilities': hindsight._spark_capabilities_of('sail' if catalog == 'sail' else 'spark')}) -%}
  {%- endif -%}
  {{ return(cache['spark_capabilities']) }}
{% endmacro %}

{#- The capability map of an engine by name (one place for both). -#}
{% macro _spark_capabilities_of(engine) %}
  {%- if engine == 'sail' -%}
    {{ return({'engine': 'sail', 'staging': 'table', 'change_data_feed': false, 'session_conf': false,
               'add_columns': false, 'replace_schema': false, 'list_location': true, 'read_local_files': true,
               'tile_prefix': 'join'}) }}
  {%- endif -%}
  {{ return({'engine': 'spark', 'staging': 'cache', 'change_data_feed': true, 'session_conf': true,
             'add_columns': true, 'replace_schema': true, 'list_location': false, 'read_local_files': false,
             'tile_prefix': 'window'}) }}
{% endmacro %}

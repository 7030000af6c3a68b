{#-
  The `feature_view` materialization on Spark (dbt-spark over Spark Connect: Sail, Apache Spark,
  Databricks): the model's rows become a Delta table at the view's location, written by the Spark
  server in one Delta commit, registered in the catalog so ref() and dbt tests read it.

  Steps, as on DuckDB: read and validate config -> decide the processing range (full refresh,
  incremental, backfill; register_feature_views, an on-run-start hook, has already registered a
  Delta table found at the location that the catalog lost) -> stage the model's rows in that range
  once (an aggregation view's: its tiles) -> hold back rows from the future -> validate them (and
  refuse a full refresh that would empty the table) -> choose the derived partition's grain
  (derived_partition.sql) -> one Delta commit:
    full refresh  CREATE OR REPLACE TABLE ... USING delta ... AS SELECT
    incremental   MERGE on (entities, timestamp[, created]); unchanged rows (floats within
                  cfg.float_tolerance relative) are not updated, so a rerun commits nothing
    backfill      MERGE ... WHEN NOT MATCHED BY SOURCE AND <range> THEN DELETE: the range is
                  replaced in one commit
  Nothing is written unless every check passed. Timestamps are stored as Delta `timestamp` (UTC),
  as delta-rs writes them on DuckDB, so both engines' tables share one Arrow schema.

  The model's SQL runs once: its rows are staged (spark_stage_rows, by the engine's capability)
  and every check and the write read the staged rows.
-#}
{% materialization feature_view, adapter='spark' %}
  {%- set cfg = hindsight.feature_view_config() -%}
  {%- set capabilities = hindsight.spark_capabilities() -%}
  {%- set range = hindsight.processing_range() -%}
  {%- do hindsight.log_widened_range(cfg, range) -%}
  {%- set exists = hindsight.feature_view_exists() -%}
  {%- set target_relation = this.incorporate(type='table') -%}
  {%- set model_rows = hindsight._spark_temp_view('model') -%}
  {%- set stage = hindsight._spark_temp_view('stage') -%}
  {%- set kept = hindsight._spark_temp_view('kept') -%}

  {{ run_hooks(pre_hooks) }}

  {#- A temporary view of the model's SQL: analysed for its columns, never run on its own. -#}
  {% call statement('model_rows') -%}
    create or replace temporary view {{ model_rows }} as
    {{ compiled_code }}
  {%- endcall %}
  {% do hindsight.validate_feature_view_columns(model_rows, cfg) %}

  {#- An aggregation view stages its tiles (macros/aggregations/aggregation_tiles.sql, or
      aggregation_tiles_by_join.sql by the engine's capability tile_prefix), not the events. -#}
  {%- set rows = model_rows -%}
  {%- if cfg.aggregation -%}
    {%- set rows = hindsight._spark_temp_view('tiles') -%}
    {% call statement('tiles') -%}
      create or replace temporary view {{ rows }} as
      {%- set tiles = hindsight.aggregation_tiles_by_join if capabilities.tile_prefix == 'join' else hindsight.aggregation_tiles %}
      {{ tiles(model_rows, cfg, range, hindsight.validate_aggregation_events(model_rows, cfg)) }}
    {%- endcall %}
  {%- endif -%}
  {%- set in_range = hindsight.range_predicate(adapter.quote(range.column or cfg.timestamp_field), range) -%}
  {%- set staged_sql -%}
    select {{ hindsight._spark_stage_columns(adapter.get_columns_in_relation(rows), cfg) | join(', ') }}
    from {{ rows }}
    where {{ in_range }}
  {%- endset -%}
  {% do hindsight.spark_stage_rows(stage, staged_sql, capabilities) %}

  {%- set deferred = hindsight.future_rows(stage, cfg, range) -%}
  {% call statement('kept') -%}
    create or replace temporary view {{ kept }} as
    select * from {{ stage }}{% if deferred > 0 %} where {{ hindsight.future_rows_kept(cfg, range) }}{% endif %}
  {%- endcall %}
  {#- A full refresh chooses the derived partition's grain, where the engine can replace the table's columns. -#}
  {%- set choose_grain = cfg.derived_partition and range.mode == 'full_refresh' and (not exists or capabilities.replace_schema) -%}
  {% set staged = hindsight.validate_feature_view_rows(kept, cfg, count_days=choose_grain) %}
  {% do hindsight.require_feature_descriptions(kept, cfg) %}
  {% do hindsight.refuse_empty_full_refresh(staged.rows, cfg, range) %}
  {#- The derived partition last, at the grain this run keeps or chooses (derived_partition.sql). -#}
  {%- set out = kept -%}
  {%- if cfg.derived_partition -%}
    {%- do cfg.update({'partition_by': [hindsight.derived_partition_column(cfg, range, staged, choose_grain)]}) -%}
    {%- set out = hindsight._spark_temp_view('out') -%}
    {% call statement('out') -%}
      create or replace temporary view {{ out }} as
      select *, {{ hindsight.derived_partition_value(cfg.partition_by[0], cfg.timestamp_field) }} as {{ cfg.partition_by[0] }}
      from {{ kept }}
    {%- endcall %}
  {%- endif %}
  {% do hindsight.spark_check_contract(target_relation, out, cfg, exists, range.mode) %}

  {%- set commit_metadata = {
      'dbt_invocation_id': invocation_id,
      'dbt_model': model.unique_id,
      'hindsight_mode': range.mode if exists else 'full_refresh',
  } -%}
  {%- if range.mode == 'full_refresh' or not exists -%}
    {%- set write_sql = hindsight.spark_replace_table_sql(target_relation, out, cfg, capabilities, commit_metadata, exists) -%}
  {%- elif range.mode in ['incremental', 'backfill'] -%}
    {%- set write_sql = hindsight.spark_merge_sql(target_relation, out, cfg, range, capabilities) -%}
  {%- else -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": unknown processing mode " ~ range.mode ~ "; expected full_refresh, incremental or backfill.") }}
  {%- endif -%}

  {% do hindsight._spark_set_commit_metadata(capabilities, commit_metadata) %}
  {% call statement('main') -%}
    {{ write_sql }}
  {%- endcall %}
  {% do hindsight._spark_set_commit_metadata(capabilities, none) %}
  {%- do adapter.cache_added(target_relation) -%}

  {% for view in ([out] if cfg.derived_partition else []) + [kept] %}
    {% call statement('drop_kept_' ~ loop.index) -%}
      drop view if exists {{ view }}
    {%- endcall %}
  {% endfor %}
  {% do hindsight.spark_drop_stage(stage, capabilities) %}
  {% for view in ([rows] if cfg.aggregation else []) + [model_rows] %}
    {% call statement('drop_' ~ loop.index) -%}
      drop view if exists {{ view }}
    {%- endcall %}
  {% endfor %}
  {{ run_hooks(post_hooks) }}
  {% do persist_docs(target_relation, model) %}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}


{#- A session-scoped temporary view for one step of this model's run (rendered without schema). -#}
{% macro _spark_temp_view(step) %}
  {{ return(api.Relation.create(identifier=this.identifier ~ '__hindsight_' ~ step, type='view')) }}
{% endmacro %}


{#-
  The staged select list: the model's columns, timestamp_ntz cast to timestamp (delta-rs writes
  timestamps as UTC-adjusted `timestamp`; the session zone is UTC so the instant is kept), then a
  push view's pushed-rows column. The derived partition comes after validation, once its grain is known.
-#}
{% macro _spark_stage_columns(columns, cfg) %}
  {%- set select_list = [] -%}
  {%- for column in columns -%}
    {%- set name = adapter.quote(column.name) -%}
    {%- if (column.dtype | lower) == 'timestamp_ntz' -%}
      {%- do select_list.append('cast(' ~ name ~ ' as timestamp) as ' ~ name) -%}
    {%- else -%}
      {%- do select_list.append(name) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if cfg.push -%}
    {%- do select_list.append(hindsight.pushed_at_null()) -%}
  {%- endif -%}
  {{ return(select_list) }}
{% endmacro %}


{#-
  Commit metadata (dbt invocation id, model, mode) on Apache Spark and Databricks: Delta records the
  session setting spark.databricks.delta.commitInfo.userMetadata in each commit's userMetadata, as
  JSON here. `metadata=none` clears it after the write. Sail accepts neither SQL SET of spark.* keys
  nor this setting: there only full refreshes carry it (a CREATE TABLE option, see
  spark_replace_table_sql); its MERGE commits have no userMetadata.
-#}
{% macro _spark_set_commit_metadata(capabilities, metadata) %}
  {%- if not capabilities.session_conf -%}{{ return(none) }}{%- endif -%}
  {%- if metadata is none -%}
    {%- do run_query('reset spark.databricks.delta.commitInfo.userMetadata') -%}
  {%- else -%}
    {#- SET takes the rest of the statement verbatim: JSON needs no quoting, and has no ';'. -#}
    {%- do run_query('set spark.databricks.delta.commitInfo.userMetadata=' ~ tojson(metadata, sort_keys=true)) -%}
  {%- endif -%}
{% endmacro %}

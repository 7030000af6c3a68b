{#-
  The `feature_view` materialization on DuckDB: the model's rows become a Delta table written by
  delta-rs (through the dbt-duckdb plugin in offline_store/dbt_plugin.py), and a view over
  delta_scan() keeps ref() and dbt tests working.

  Steps: read and validate config -> decide the processing range (full refresh, incremental,
  backfill) -> stage the model's rows in that range (an aggregation view's: its tiles), holding
  back rows from the future ->
  validate them (and refuse a full refresh that would empty the table) -> choose the derived
  partition's grain (derived_partition.sql) -> one Delta commit
  (overwrite, MERGE, or replace of the range) -> point the view at the table.
  Nothing is written to Delta unless every check passed.
-#}
{% materialization feature_view, adapter='duckdb' %}
  {%- set cfg = hindsight.feature_view_config() -%}
  {%- set range = hindsight.processing_range() -%}
  {%- do hindsight.log_widened_range(cfg, range) -%}

  {%- set target_relation = this.incorporate(type='view') -%}
  {%- set model_rows = make_intermediate_relation(target_relation, suffix='__hindsight_model') -%}
  {%- set stage = make_intermediate_relation(this.incorporate(type='table'), suffix='__hindsight_stage') -%}
  {%- set stage_out = make_intermediate_relation(target_relation, suffix='__hindsight_out') -%}
  {%- for leftover in [model_rows, stage, stage_out] -%}
    {{ drop_relation_if_exists(load_cached_relation(leftover)) }}
  {%- endfor %}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {% call statement('model_rows') -%}
    create view {{ model_rows }} as
    {{ compiled_code }}
  {%- endcall %}
  {% do hindsight.validate_feature_view_columns(model_rows, cfg) %}

  {#- An aggregation view stages its tiles (macros/aggregations/aggregation_tiles.sql), not the events. -#}
  {% call statement('stage') -%}
    create table {{ stage }} as
    {% if cfg.aggregation -%}
    {{ hindsight.aggregation_tiles(model_rows, cfg, range, hindsight.validate_aggregation_events(model_rows, cfg)) }}
    {%- else -%}
    select * from {{ model_rows }}
    where {{ hindsight.range_predicate(adapter.quote(range.column or cfg.timestamp_field), range) }}
    {%- endif %}
  {%- endcall %}

  {% if hindsight.future_rows(stage, cfg, range) > 0 %}
    {% call statement('defer_future_rows') -%}
      delete from {{ stage }} where not {{ hindsight.future_rows_kept(cfg, range) }}
    {%- endcall %}
  {% endif %}
  {% set staged = hindsight.validate_feature_view_rows(stage, cfg, count_days=cfg.derived_partition and range.mode == 'full_refresh') %}
  {% do hindsight.require_feature_descriptions(stage, cfg) %}
  {% do hindsight.refuse_empty_full_refresh(staged.rows, cfg, range) %}
  {%- if cfg.derived_partition -%}
    {%- do cfg.update({'partition_by': [hindsight.derived_partition_column(cfg, range, staged)]}) -%}
  {%- endif %}

  {% call statement('stage_out') -%}
    create view {{ stage_out }} as
    {# The partition column last, as Spark keeps it (a partitioned Delta table lists it last there). #}
    select *{%- if cfg.push %}, {{ hindsight.pushed_at_null() }}{% endif %}
    {%- if cfg.derived_partition %}, {{ hindsight.derived_partition_value(cfg.partition_by[0], cfg.timestamp_field) }} as {{ cfg.partition_by[0] }}{% endif %}
    from {{ stage }}
  {%- endcall %}
  {{ adapter.commit() }}

  {%- set write = {
      'model': cfg.model,
      'uri': cfg.location,
      'mode': range.mode,
      'unique_key': cfg.unique_key,
      'timestamp_field': cfg.timestamp_field,
      'partition_by': cfg.partition_by,
      'range_start': none if range.start is none else range.start.isoformat(),
      'range_end': none if range.end is none else range.end.isoformat(),
      'on_schema_change': cfg.on_schema_change,
      'entities': cfg.entities,
      'registry': hindsight.registry_location(),
      'allow_breaking': cfg.allow_breaking,
      'float_tolerance': cfg.float_tolerance,
      'pushed_column': cfg.pushed_column,
      'drop_pushed_rows': cfg.drop_pushed_rows,
      'commit_metadata': {
          'dbt_invocation_id': invocation_id,
          'dbt_model': model.unique_id,
          'hindsight_mode': range.mode,
      },
  } -%}
  {% do adapter.store_relation('hindsight', stage_out, [], cfg.location, 'delta', write) %}

  {#- A project's model that was a table before it became a feature view: a view replaces it. -#}
  {%- set existing = load_cached_relation(target_relation) -%}
  {%- if existing is not none and not existing.is_view -%}
    {{ adapter.drop_relation(existing) }}
  {%- endif %}
  {% call statement('main') -%}
    create or replace view {{ target_relation }} as
    select * from {{ hindsight.feature_view_relation(cfg.location) }}
  {%- endcall %}

  {{ drop_relation_if_exists(stage_out) }}
  {{ drop_relation_if_exists(stage) }}
  {{ drop_relation_if_exists(model_rows) }}
  {{ run_hooks(post_hooks, inside_transaction=True) }}
  {% do persist_docs(target_relation, model) %}
  {{ adapter.commit() }}
  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {{ return({'relations': [target_relation]}) }}
{% endmaterialization %}

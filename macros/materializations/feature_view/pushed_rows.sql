{#-
  Push views (config push=true) keep their pushed rows through every dbt run.

  Pushed rows (offline_store/pushed_rows.py appends them) are the rows whose column
  `_hs_pushed_at` is set: when the push was acknowledged. The materialization writes that column
  (NULL) on every row the model computes, and every write of a push view leaves the pushed rows:
    full refresh  the new rows replace every computed row; pushed rows are carried over (DuckDB:
                  offline_store/delta_writer.py; Spark: spark_replace_table_sql)
    incremental   the MERGE never updates a pushed row
    backfill      only computed rows of the range are replaced or deleted
  On the same (entities, timestamp[, created]) a pushed row wins over a computed one, as online
  (a push is the latest word on that event): the computed row is not written.
  To drop pushed rows: one full refresh with --vars '{"hindsight_drop_pushed_rows": true}'.
-#}

{#- The column marking pushed rows; offline_store.pushed_rows.PUSHED_AT is the same name. -#}
{% macro pushed_at_column() %}
  {{- return('_hs_pushed_at') -}}
{% endmacro %}

{#- The push config of a feature view, validated (called by feature_view_config). -#}
{% macro push_config(where, aggregation) %}
  {%- set push = config.get('push', false) -%}
  {%- set push_partial = config.get('push_partial', false) -%}
  {%- for name, value in [('push', push), ('push_partial', push_partial)] if value not in [true, false] -%}
    {{ exceptions.raise_compiler_error(where ~ ": config '" ~ name ~ "' must be true or false, got " ~ value ~ ".") }}
  {%- endfor -%}
  {%- if push and aggregation -%}
    {{ exceptions.raise_compiler_error(where ~ ": config push=true is not accepted on an aggregation view (its rows are tiles of events); declare a stream source for its events and ingest them, or remove push.") }}
  {%- endif -%}
  {%- if push_partial and not push -%}
    {{ exceptions.raise_compiler_error(where ~ ": config push_partial=true needs push=true (it lets a push carry a subset of the features).") }}
  {%- endif -%}
  {%- set drop = var('hindsight_drop_pushed_rows', false) -%}
  {%- if drop not in [true, false, 'true', 'false'] -%}
    {{ exceptions.raise_compiler_error(where ~ ": var hindsight_drop_pushed_rows must be true or false, got " ~ drop ~ ".") }}
  {%- endif -%}
  {{ return({
      'push': push,
      'push_partial': push_partial,
      'pushed_column': hindsight.pushed_at_column() if push else none,
      'drop_pushed_rows': drop in [true, 'true'],
  }) }}
{% endmacro %}

{#-
  Whether the view's existing Delta table has the pushed-rows column (a table built before the
  view took pushes has not). `relation`: what feature_view_relation returns.
-#}
{% macro has_pushed_column(relation) %}
  {%- set columns = run_query('select * from ' ~ relation ~ ' limit 0').column_names -%}
  {{ return(hindsight.pushed_at_column() in columns) }}
{% endmacro %}

{#-
  A predicate selecting the rows the model computed (not pushed) of the view's existing table, for
  the watermark of incremental runs and the empty-refresh check: pushed rows must not move the
  watermark (an incremental run would then skip source rows) nor count as rows a refresh removes.
  'true' where the view takes no pushes or its table has no pushed-rows column.
-#}
{% macro computed_rows_predicate(cfg, location, column_prefix='') %}
  {%- if cfg.push and hindsight.has_pushed_column(hindsight.feature_view_relation(location)) -%}
    {{ return(column_prefix ~ adapter.quote(hindsight.pushed_at_column()) ~ ' is null') }}
  {%- endif -%}
  {{ return('1 = 1') }}
{% endmacro %}

{#-
  The null pushed-rows column the staged rows of a push view carry: engines name the UTC timestamp
  type differently (DuckDB's timestamptz is what delta-rs writes as Delta `timestamp`; Spark's
  `timestamp` is that type).
-#}
{% macro pushed_at_null() %}
  {{- return(adapter.dispatch('pushed_at_null', 'hindsight')()) -}}
{% endmacro %}

{% macro default__pushed_at_null() -%}
  cast(null as timestamp) as {{ adapter.quote(hindsight.pushed_at_column()) }}
{%- endmacro %}

{% macro duckdb__pushed_at_null() -%}
  cast(null as timestamptz) as {{ adapter.quote(hindsight.pushed_at_column()) }}
{%- endmacro %}

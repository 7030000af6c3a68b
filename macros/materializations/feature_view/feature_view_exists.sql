{#-
  Whether the current feature view's Delta table exists, so this run can be incremental or a
  backfill. Called by is_incremental(), processing_range() and the materialization, in `dbt compile`
  and `dbt docs generate` too: it reads dbt's relation cache (filled once at the start of the
  command) and never changes the catalog. The answer is kept per model for the rest of the command
  (run_cache), so every caller of one model sees the same one.
-#}
{% macro feature_view_exists() %}
  {%- set cache = hindsight.run_cache().setdefault('feature_view_exists', {}) -%}
  {%- if this | string not in cache -%}
    {%- do cache.update({this | string: adapter.dispatch('feature_view_exists', 'hindsight')()}) -%}
  {%- endif -%}
  {{- return(cache[this | string]) -}}
{% endmacro %}

{#-
  Any adapter: the catalog decides, through dbt's relation cache, as dbt-spark's own is_incremental()
  does. On Spark the catalog is kept in step with the Delta tables before any model compiles:
  register_feature_views(), an on-run-start hook of `dbt run` / `dbt build`, registers a table found
  at a view's location that the catalog lost (Sail forgets its catalog on restart) and drops an
  entry that points elsewhere. `dbt compile` and `dbt docs generate` run no hooks: they answer from
  the catalog as it is.
-#}
{% macro default__feature_view_exists() %}
  {{ return(load_relation(this) is not none) }}
{% endmacro %}

{#-
  Whether the current feature view's Delta table exists, so this run can be incremental or a
  backfill. Called by is_incremental(), processing_range() and the materialization, in `dbt compile`
  and `dbt docs generate` too: it only reads (the catalog or the table's log) and never changes the
  catalog. The answer is kept per model for the rest of the command (run_cache), so every caller of
  one model sees the same one.
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

{#-
  DuckDB: the Delta table decides, not DuckDB's view over it, which is only a pointer. They part
  when a project's model was a view or table before it became a feature view, when the offline
  store (or offline_store in hindsight.yml) moved or was deleted, or with a new DuckDB file; asking
  the relation would then read a table that is not there, or rebuild one that is. A version file in
  its _delta_log (commit or checkpoint) is a table; a file the pattern matched only because the
  location itself holds * or ? is not.
-#}
{% macro duckdb__feature_view_exists() %}
  {%- set log = hindsight.this_feature_view_location("feature view " ~ model.name) ~ '/_delta_log/' -%}
  {%- set literal = "'" ~ log.replace("'", "''") ~ "'" -%}
  {%- set found = run_query("select count(*) from glob(" ~ literal ~ " || '0*') where starts_with(file, " ~ literal ~ ")") -%}
  {{ return(found[0][0] > 0) }}
{% endmacro %}

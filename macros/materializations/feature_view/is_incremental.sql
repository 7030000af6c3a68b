{#-
  dbt's is_incremental() only recognises the stock `incremental` materialization; this override
  also answers for `feature_view` models, so `{% if is_incremental() %}` works in them as usual.
  Whether the view's table exists is decided once per model and dbt command, with no side effect
  (feature_view_exists: dbt's relation cache on Spark, the table's Delta log on DuckDB), so
  `dbt compile` and `dbt docs generate` leave the catalog as it was.
-#}
{% macro is_incremental() %}
  {%- if not execute -%}
    {{ return(false) }}
  {%- endif -%}
  {%- if model.config.materialized == 'feature_view' -%}
    {{ return(not should_full_refresh() and hindsight.feature_view_exists()) }}
  {%- endif -%}
  {{ return(dbt.is_incremental()) }}
{% endmacro %}

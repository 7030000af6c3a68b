{#-
  dbt's is_incremental() only recognises the stock `incremental` materialization; this override
  also answers for `feature_view` models, so `{% if is_incremental() %}` works in them as usual.
  Whether the view's table exists is the engine's call (feature_view_exists: Spark looks at the
  Delta location, not only the catalog).
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

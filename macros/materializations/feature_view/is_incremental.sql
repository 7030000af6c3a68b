{#-
  dbt's is_incremental() only recognises the stock `incremental` materialization; this override
  also answers for `feature_view` models, so `{% if is_incremental() %}` works in them as usual.
-#}
{% macro is_incremental() %}
  {%- if not execute -%}
    {{ return(false) }}
  {%- endif -%}
  {%- if model.config.materialized == 'feature_view' -%}
    {%- set existing = adapter.get_relation(this.database, this.schema, this.identifier) -%}
    {{ return(existing is not none and not should_full_refresh()) }}
  {%- endif -%}
  {{ return(dbt.is_incremental()) }}
{% endmacro %}

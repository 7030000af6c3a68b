{#-
  The feature view's Delta table as a relation this engine can select from, read straight from its
  location (the catalog entry may point elsewhere, e.g. a copied DuckDB file).
-#}
{% macro feature_view_relation(location) %}
  {{- return(adapter.dispatch('feature_view_relation', 'hindsight')(location)) -}}
{% endmacro %}

{% macro default__feature_view_relation(location) -%}
  {{ hindsight.unsupported_adapter('feature_view_relation') }}
{%- endmacro %}

{% macro spark__feature_view_relation(location) -%}
  delta.`{{ location }}`
{%- endmacro %}

{% macro duckdb__feature_view_relation(location) -%}
  delta_scan('{{ location }}')
{%- endmacro %}

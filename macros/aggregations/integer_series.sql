{#- A set-returning select-list expression: one row per integer from `start` to `stop`, inclusive. -#}
{% macro integer_series(start, stop) %}
  {{- return(adapter.dispatch('integer_series', 'hindsight')(start, stop)) -}}
{% endmacro %}

{% macro default__integer_series(start, stop) -%}
  {{ hindsight.unsupported_adapter('integer_series') }}
{%- endmacro %}

{% macro spark__integer_series(start, stop) -%}
  explode(sequence({{ start }}, {{ stop }}))
{%- endmacro %}

{#- DuckDB's range() excludes its stop. -#}
{% macro duckdb__integer_series(start, stop) -%}
  unnest(range({{ start }}, {{ stop }} + 1))
{%- endmacro %}

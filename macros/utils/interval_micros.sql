{#- An interval literal of `micros` microseconds (window frames, grid steps). -#}
{% macro interval_micros(micros) %}
  {{- return(adapter.dispatch('interval_micros', 'hindsight')(micros)) -}}
{% endmacro %}

{% macro default__interval_micros(micros) -%}
  interval {{ micros }} microseconds
{%- endmacro %}

{#- DuckDB parses a bare number only up to int32 after INTERVAL; the quoted form takes any. -#}
{% macro duckdb__interval_micros(micros) -%}
  interval '{{ micros }} microseconds'
{%- endmacro %}

{#-
  One aggregate over a named window, as window_aggregates needs it. Grid rows carry NULL in every
  aggregated column, so every function here ignores NULLs.
-#}
{% macro aggregate_over_window(function, column, window_name) %}
  {{- return(adapter.dispatch('aggregate_over_window', 'hindsight')(function, column, window_name)) -}}
{% endmacro %}

{% macro default__aggregate_over_window(function, column, window_name) -%}
  {%- if function == 'count' -%} count({{ column }})
  {%- elif function == 'sum' -%} sum({{ column }})
  {%- elif function == 'mean' -%} avg({{ column }})
  {%- elif function == 'min' -%} min({{ column }})
  {%- elif function == 'max' -%} max({{ column }})
  {%- elif function == 'stddev' -%} stddev_samp({{ column }})
  {%- elif function == 'last' -%} last_value({{ column }}, true)
  {#- Spark has no DISTINCT in window aggregates: count the window's set of values instead. -#}
  {%- elif function == 'count_distinct' -%} size(collect_set({{ column }}))
  {%- else -%} {{ exceptions.raise_compiler_error("unknown aggregation function " ~ function) }}
  {%- endif %} over {{ window_name }}
{%- endmacro %}

{#- DuckDB has DISTINCT window aggregates and IGNORE NULLS inside the call. -#}
{% macro duckdb__aggregate_over_window(function, column, window_name) -%}
  {%- if function == 'count_distinct' -%} count(distinct {{ column }}) over {{ window_name }}
  {%- elif function == 'last' -%} last_value({{ column }} ignore nulls) over {{ window_name }}
  {%- else -%} {{ hindsight.default__aggregate_over_window(function, column, window_name) }}
  {%- endif -%}
{%- endmacro %}

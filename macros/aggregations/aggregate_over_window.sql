{#-
  One aggregate over a named window, as window_aggregates needs it. Grid rows carry NULL in every
  aggregated column, so every function here ignores NULLs.
-#}
{% macro aggregate_over_window(function, column, window_name) %}
  {{- return(adapter.dispatch('aggregate_over_window', 'hindsight')(function, column, window_name)) -}}
{% endmacro %}

{% macro default__aggregate_over_window(function, column, window_name) -%}
  {{ hindsight.unsupported_adapter('aggregate_over_window') }}
{%- endmacro %}

{#- The functions whose SQL (aggregation_functions) both engines share, over the window. -#}
{% macro _portable_aggregate_over_window(function, column, window_name) -%}
  {%- set entry = hindsight.aggregation_functions().get(function) -%}
  {%- if entry and entry.sql -%} {{ entry.sql | replace('{v}', column) }} over {{ window_name }}
  {%- else -%} {{ exceptions.raise_compiler_error("unknown aggregation function " ~ function) }}
  {%- endif %}
{%- endmacro %}

{#- DuckDB has DISTINCT window aggregates and IGNORE NULLS inside the call. -#}
{% macro duckdb__aggregate_over_window(function, column, window_name) -%}
  {%- if function == 'count_distinct' -%} count(distinct {{ column }}) over {{ window_name }}
  {%- elif function == 'last' -%} last_value({{ column }} ignore nulls) over {{ window_name }}
  {%- else -%} {{ hindsight._portable_aggregate_over_window(function, column, window_name) }}
  {%- endif -%}
{%- endmacro %}

{#-
  Spark has no DISTINCT in window aggregates: count the window's set of values instead. The OVER
  belongs to collect_set (Spark and Sail reject `size(...) over w`); the cast gives the bigint that
  count(distinct) returns on DuckDB. last_value takes ignoreNulls as its second argument.
  Sail (DataFusion) slides stddev_samp over a RANGE window by adding and retracting rows from its
  running variance, which drifts after large values leave the window: up to 2e-7 relative off
  DuckDB on the demo data. There the window's values are collected and folded once, forward
  (Welford), which matches DuckDB to 1e-12. Apache Spark recomputes each frame: stddev_samp stays.
-#}
{% macro spark__aggregate_over_window(function, column, window_name) -%}
  {%- if function == 'count_distinct' -%} cast(size(collect_set({{ column }}) over {{ window_name }}) as {{ dbt.type_bigint() }})
  {%- elif function == 'last' -%} last_value({{ column }}, true) over {{ window_name }}
  {%- elif function == 'stddev' and hindsight.spark_engine() == 'sail' -%}
    aggregate(
        collect_list(cast({{ column }} as double)) over {{ window_name }},
        named_struct('n', cast(0 as {{ dbt.type_bigint() }}), 'mean', cast(0 as double), 'm2', cast(0 as double)),
        (acc, x) -> named_struct(
            'n', acc.n + 1,
            'mean', acc.mean + (x - acc.mean) / (acc.n + 1),
            'm2', acc.m2 + (x - acc.mean) * (x - (acc.mean + (x - acc.mean) / (acc.n + 1)))),
        acc -> case when acc.n > 1 then sqrt(acc.m2 / (acc.n - 1)) end)
  {%- else -%} {{ hindsight._portable_aggregate_over_window(function, column, window_name) }}
  {%- endif -%}
{%- endmacro %}

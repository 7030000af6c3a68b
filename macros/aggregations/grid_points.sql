{#- A set-returning select-list expression: one row per grid point from `start` to `stop`, inclusive. -#}
{% macro grid_points(start, stop, step_micros) %}
  {{- return(adapter.dispatch('grid_points', 'hindsight')(start, stop, step_micros)) -}}
{% endmacro %}

{% macro default__grid_points(start, stop, step_micros) -%}
  explode(sequence({{ start }}, {{ stop }}, {{ hindsight.interval_micros(step_micros) }}))
{%- endmacro %}

{% macro duckdb__grid_points(start, stop, step_micros) -%}
  unnest(generate_series({{ start }}, {{ stop }}, {{ hindsight.interval_micros(step_micros) }}))
{%- endmacro %}

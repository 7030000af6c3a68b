{#- The WHERE predicate that keeps a model's output inside this run's processing range. -#}
{% macro range_predicate(column, range) %}
  {%- set clauses = [] -%}
  {%- if range.start is not none -%}
    {%- do clauses.append(column ~ ' >= ' ~ hindsight.timestamp_literal(range.start)) -%}
  {%- endif -%}
  {%- if range.end is not none -%}
    {%- do clauses.append(column ~ ' < ' ~ hindsight.timestamp_literal(range.end)) -%}
  {%- endif -%}
  {{- return(clauses | join(' and ') if clauses else '1 = 1') -}}
{% endmacro %}

{#- A UTC timestamp literal from a Python datetime or an ISO string, portable across engines. -#}
{% macro timestamp_literal(value) %}
  {%- if value is string -%}
    {%- set text = value -%}
  {%- else -%}
    {%- set text = value.strftime('%Y-%m-%d %H:%M:%S.%f') -%}
  {%- endif -%}
  {{- return("cast('" ~ text ~ "' as " ~ dbt.type_timestamp() ~ ")") -}}
{% endmacro %}

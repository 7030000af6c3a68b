{#- The inside of a single-quoted Spark SQL string literal: backslashes and quotes escaped. -#}
{% macro spark_string(text) %}
  {{- return((text | string).replace('\\', '\\\\').replace("'", "\\'")) -}}
{% endmacro %}

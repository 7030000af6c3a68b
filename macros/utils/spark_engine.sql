{#- 'sail' or 'spark': which Spark Connect server the spark target talks to (spark_capabilities().engine). -#}
{% macro spark_engine() %}
  {{ return(hindsight.spark_capabilities()['engine']) }}
{% endmacro %}

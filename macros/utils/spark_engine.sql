{#-
  Which Spark Connect server the spark target talks to: 'sail' or 'spark' (Apache Spark, Databricks).
  Sail (0.7.2) lacks a few Delta features that Spark has, and the spark__ macros say where they
  differ: no change data feed, no ALTER TABLE ADD COLUMNS, no SQL `SET spark.*`, and
  CREATE OR REPLACE TABLE keeps the old schema. Sail names its catalog 'sail'.
-#}
{% macro spark_engine() %}
  {%- if not execute -%}
    {{ return('spark') }}
  {%- endif -%}
  {%- set catalog = run_query('select current_catalog()')[0][0] -%}
  {{ return('sail' if catalog == 'sail' else 'spark') }}
{% endmacro %}

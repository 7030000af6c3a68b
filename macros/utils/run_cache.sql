{#-
  A dict that lives for one dbt command and is shared by every node, hook and thread of it: facts
  that cost a query and cannot change during a run (the Spark engine's capabilities, settings read
  from hindsight.yml, whether a feature view's table exists) are computed once and kept here.
  dbt builds the manifest's flat graph (`graph` in Jinja) once per command and gives every node's
  context the same dict, so a key added to it lasts until the command ends; the flat graph is never
  written to disk. While dbt parses (execute is false) this is a fresh dict each call: nothing is
  cached from a parse.
-#}
{% macro run_cache() %}
  {%- if not execute -%}{{ return({}) }}{%- endif -%}
  {{ return(graph.setdefault('hindsight_run_cache', {})) }}
{% endmacro %}

{#-
  Where a stream source's event log (a Delta table) lives: the stream's `location` if it declares
  one, else <offline_store>/_streams/<source>/<table>, offline_store from hindsight.yml
  (HINDSIGHT_OFFLINE_STORE overrides it). offline_store/event_log.py holds the same rule for
  Python; tests/cases/event_log_locations.yml holds the cases both must agree on.
    offline_store   the root to use instead of the project setting (the conformance cases pass it)
-#}
{% macro event_log_location(source_name, table_name, location=none, offline_store=none) %}
  {%- if location -%}
    {{ return(location) }}
  {%- endif -%}
  {%- set root = offline_store if offline_store is not none else hindsight.project_setting('offline_store') -%}
  {{ return(root.rstrip('/') ~ '/_streams/' ~ source_name ~ '/' ~ table_name) }}
{% endmacro %}

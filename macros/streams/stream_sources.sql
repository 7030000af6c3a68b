{#-
  The source tables of the project that declare `meta.hindsight.stream` (registry_sync/streams.py
  reads the same declarations), as a list of {node, stream, location, columns}: columns are
  [name, data_type] pairs in declared order. Only enabled sources are in the graph.
-#}
{% macro stream_sources() %}
  {%- set found = [] -%}
  {%- if not execute -%}{{ return(found) }}{%- endif -%}
  {%- for node in graph.sources.values() -%}
    {%- set stream = ((node.meta or {}).get('hindsight') or {}).get('stream') -%}
    {%- if stream is mapping -%}
      {%- set columns = [] -%}
      {%- for column in node.columns.values() -%}
        {%- do columns.append([column.name, (column.data_type or '') | lower | trim]) -%}
      {%- endfor -%}
      {%- do found.append({
          'node': node,
          'stream': stream,
          'location': hindsight.event_log_location(node.source_name, node.name, stream.get('location')),
          'columns': columns,
      }) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(found) }}
{% endmacro %}

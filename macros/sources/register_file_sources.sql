{#-
  Makes a file-based source resolve on engines that need a catalog entry for it. Called from
  `on-run-start` in dbt_project.yml for the source `raw`, whose tables are Parquet folders under
  `root` (HINDSIGHT_RAW_DATA): `<root>/<table>/*.parquet`.
  Only tables that declare `meta.external_location` (the files convention of sources.yml) are
  touched, so a warehouse-native source with the same name is never replaced.
-#}
{% macro register_file_sources(source_name, root) %}
  {{- return(adapter.dispatch('register_file_sources', 'hindsight')(source_name, root)) -}}
{% endmacro %}

{#- DuckDB reads the files directly through each table's external_location. -#}
{% macro duckdb__register_file_sources(source_name, root) -%}
{%- endmacro %}

{% macro default__register_file_sources(source_name, root) -%}
  {{ hindsight.unsupported_adapter('register_file_sources') }}
{%- endmacro %}

{#-
  Spark: one external Parquet table per source table, dropped and created on every run: a new
  table lists its folder afresh (new part files appear; Sail has no REFRESH TABLE), and follows
  HINDSIGHT_RAW_DATA when it moves. Dropping an external table leaves its files alone.
  Sail re-parses a stored view's SQL without its backticks, so these are tables, not views over
  parquet.`path`.
-#}
{% macro spark__register_file_sources(source_name, root) -%}
  {#- Not in `dbt compile` / `docs generate`, which render hooks too and must leave the catalog alone. -#}
  {%- if not hindsight.is_build_command() -%}{{ return('') }}{%- endif -%}
  {%- set tables = [] -%}
  {%- for node in graph.sources.values() -%}
    {%- set meta = node.source_meta or {} -%}
    {%- if node.source_name == source_name and ('external_location' in meta or 'external_location' in (node.meta or {})) -%}
      {%- do tables.append(node) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if tables -%}
    {%- do run_query('create schema if not exists ' ~ adapter.quote(tables[0].schema)) -%}
  {%- endif -%}
  {%- for node in tables -%}
    {%- set relation = adapter.quote(node.schema) ~ '.' ~ adapter.quote(node.identifier) -%}
    {%- set folder = root.rstrip('/') ~ '/' ~ node.name -%}
    {%- do run_query('drop table if exists ' ~ relation) -%}
    {%- do run_query('create table ' ~ relation ~ " using parquet location '" ~ hindsight.spark_string(folder) ~ "'") -%}
  {%- endfor -%}
  {{ return('') }}
{%- endmacro %}

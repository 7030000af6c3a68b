{#-
  Makes every stream source (a source table with `meta.hindsight.stream`) readable with
  `source('<source>', '<table>')` before any model runs: creates the source's event log, an empty
  Delta table, when it does not exist yet, and points the source's relation at it. So models over
  a stream build before its first event arrived (0 rows).

  Called from `on-run-start` in Hindsight's dbt_project.yml: dbt runs a package's hooks in every
  project that installs it, so a user's project needs no hook of its own. Renders no SQL (every
  statement runs through run_query); a project without stream sources runs nothing.
-#}
{% macro register_stream_sources() %}
  {%- if not execute -%}{{ return('') }}{%- endif -%}
  {%- set streams = hindsight.stream_sources() -%}
  {%- if streams -%}
    {%- do adapter.dispatch('register_stream_sources', 'hindsight')(streams) -%}
  {%- endif -%}
  {{ return('') }}
{% endmacro %}

{% macro default__register_stream_sources(streams) %}
  {{ exceptions.raise_compiler_error("stream sources (" ~ streams | map(attribute='node.unique_id') | join(', ') ~ ") need the duckdb or spark adapter; this project runs on " ~ adapter.type()) }}
{% endmacro %}

{#-
  DuckDB: delta-rs creates the empty log (through the hindsight dbt-duckdb plugin: DuckDB's delta
  extension only reads), then a view over delta_scan() takes the source's name. The view reads
  the table as it is at query time, so events flushed later are seen without another hook.
-#}
{% macro duckdb__register_stream_sources(streams) %}
  {%- for entry in streams -%}
    {%- set node = entry.node -%}
    {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.identifier) -%}
    {%- do adapter.store_relation('hindsight', relation, [], entry.location, 'delta', {
        'hindsight_event_log': true,
        'source': node.unique_id,
        'uri': entry.location,
        'columns': entry.columns,
    }) -%}
    {%- do run_query('create schema if not exists ' ~ adapter.quote(node.database) ~ '.' ~ adapter.quote(node.schema)) -%}
    {%- do run_query('create or replace view ' ~ relation ~ ' as select * from ' ~ hindsight.feature_view_relation(entry.location)) -%}
  {%- endfor -%}
{% endmacro %}

{#-
  Spark: `create table if not exists ... using delta location` creates the empty Delta table when
  the folder has none and otherwise registers the log already there (written by the flusher with
  delta-rs). The declared columns give its schema; the catalog entry follows a moved location.
-#}
{% macro spark__register_stream_sources(streams) %}
  {#- `dbt compile` and `dbt docs generate` render hooks too: they must leave the catalog alone. -#}
  {%- if not hindsight.is_build_command() -%}{{ return('') }}{%- endif -%}
  {%- for entry in streams -%}
    {%- set node = entry.node -%}
    {%- set relation = adapter.quote(node.schema) ~ '.' ~ adapter.quote(node.identifier) -%}
    {%- set columns = [] -%}
    {%- for name, dtype in entry.columns -%}
      {%- do columns.append(adapter.quote(name) ~ ' ' ~ hindsight.spark_stream_column_type(dtype, node.unique_id ~ ' column ' ~ name)) -%}
    {%- endfor -%}
    {%- do columns.append('`_ingested_at` timestamp') -%}
    {%- do columns.append('`_event_date` date') -%}
    {%- do run_query('create schema if not exists ' ~ adapter.quote(node.schema)) -%}
    {%- do run_query('create table if not exists ' ~ relation ~ ' (' ~ columns | join(', ') ~ ") using delta partitioned by (`_event_date`) location '" ~ hindsight.spark_string(entry.location) ~ "'") -%}
  {%- endfor -%}
{% endmacro %}

{#- Spark SQL's type for a registry data_type (hindsight/core/arrow_types.py maps the same names to Arrow). -#}
{% macro spark_stream_column_type(dtype, where) %}
  {%- set types = {
      'bool': 'boolean', 'int32': 'int', 'int64': 'bigint', 'float32': 'float', 'float64': 'double',
      'string': 'string', 'date': 'date', 'timestamp': 'timestamp', 'decimal': 'decimal(20,4)',
  } -%}
  {%- if dtype not in types -%}
    {{ exceptions.raise_compiler_error(where ~ ": data_type '" ~ dtype ~ "' is not one of " ~ types.keys() | join(', ')) }}
  {%- endif -%}
  {{ return(types[dtype]) }}
{% endmacro %}

{#-
  The full-refresh write on Spark: one CREATE OR REPLACE TABLE ... USING delta ... AS SELECT at the
  view's location, partitioned, with the change data feed on (online sync reads it).

  Where Sail differs (measured on Sail 0.7.2; spark_capabilities() names each difference):
    - CREATE OR REPLACE over an existing Delta table keeps the table's schema and casts the new
      rows into it, where Spark replaces the schema. A changed column list therefore fails here,
      before anything is written, naming the columns and the way out.
    - the change data feed is not supported ("Unsupported table features required:
      [ChangeDataFeed]"): the property is left out, and online sync reads whole tables.
    - the `userMetadata` write option is honoured on CREATE: it carries the commit metadata.
    - a push view's pushed rows (pushed_rows.sql) are written back in the same statement: the
      new table is the computed rows whose key no pushed row holds, UNION ALL the pushed rows read
      from the table being replaced (projected onto the new columns; Delta reads the old snapshot).
    - the Delta schema keeps NOT NULL where the query proves it (e.g. `count(...) over w`), where
      Spark's Delta and delta-rs make every column nullable: `nullif(c, null)`, which is `c`,
      makes the column nullable, so both engines' tables have one Arrow schema.
-#}
{% macro spark_replace_table_sql(relation, stage, cfg, capabilities, commit_metadata, exists) %}
  {%- if exists and not capabilities.replace_schema -%}
    {%- set problems = hindsight._spark_schema_changes(relation, stage, cfg) -%}
    {%- if problems -%}
      {{ exceptions.raise_compiler_error(cfg.where ~ ": the model's columns no longer match its Delta table (" ~ problems | join('; ') ~ "). The table was not changed. Sail cannot replace the schema of an existing Delta table: move or delete " ~ cfg.location ~ ", then run again (Spark and Databricks replace it on --full-refresh).") }}
    {%- endif -%}
  {%- endif -%}
  {%- set nullable = [] -%}
  {%- for column in hindsight._spark_columns(stage) -%}
    {%- do nullable.append('nullif(' ~ adapter.quote(column.name) ~ ', null) as ' ~ adapter.quote(column.name)) -%}
  {%- endfor -%}
  {%- set partitions = [] -%}
  {%- for column in cfg.partition_by -%}{%- do partitions.append(adapter.quote(column)) -%}{%- endfor -%}
  {%- set sql -%}
    create or replace table {{ relation }}
    using delta
    {%- if not capabilities.session_conf %}
    options ('userMetadata' = '{{ hindsight.spark_string(tojson(commit_metadata, sort_keys=true)) }}')
    {%- endif %}
    {%- if partitions %}
    partitioned by ({{ partitions | join(', ') }})
    {%- endif %}
    location '{{ hindsight.spark_string(cfg.location) }}'
    {%- if capabilities.change_data_feed %}
    tblproperties ('delta.enableChangeDataFeed' = 'true')
    {%- endif %}
    as select {{ nullable | join(', ') }} from {{ hindsight._spark_rows_to_write(relation, stage, cfg, exists) }}
  {%- endset -%}
  {{ return(sql) }}
{% endmacro %}


{#-
  What a full refresh writes: the staged rows, and for a push view whose table holds pushed rows,
  those rows too (computed rows with a pushed row's key are left out: the push wins).
-#}
{% macro _spark_rows_to_write(relation, stage, cfg, exists) %}
  {%- set pushed_at = adapter.quote(hindsight.pushed_at_column()) -%}
  {%- if not (exists and cfg.push and not cfg.drop_pushed_rows and hindsight.has_pushed_column(relation)) -%}
    {{ return(stage) }}
  {%- endif -%}
  {%- set held = hindsight._spark_columns(relation) | map(attribute='name') | list -%}
  {%- set computed = [] -%}
  {%- set pushed = [] -%}
  {%- for column in hindsight._spark_columns(stage) -%}
    {%- set name = adapter.quote(column.name) -%}
    {%- do computed.append('s.' ~ name) -%}
    {%- if cfg.derived_partition and column.name == cfg.partition_by[0] -%}
      {#- Derived again: the full refresh may have chosen another grain (derived_partition.sql). -#}
      {%- set value = hindsight.derived_partition_value(column.name, cfg.timestamp_field) -%}
    {%- else -%}
      {%- set value = 'p.' ~ name if column.name in held else 'null' -%}
    {%- endif -%}
    {%- do pushed.append('cast(' ~ value ~ ' as ' ~ column.dtype ~ ') as ' ~ name) -%}
  {%- endfor -%}
  {%- set same_key = [] -%}
  {%- for key in cfg.unique_key -%}{%- do same_key.append('k.' ~ adapter.quote(key) ~ ' = s.' ~ adapter.quote(key)) -%}{%- endfor -%}
  {%- set rows -%}
    (select {{ computed | join(', ') }} from {{ stage }} as s
     where not exists (select 1 from {{ relation }} as k where k.{{ pushed_at }} is not null and {{ same_key | join(' and ') }})
     union all
     select {{ pushed | join(', ') }} from {{ relation }} as p where p.{{ pushed_at }} is not null) as hs_rows
  {%- endset -%}
  {{ return(rows) }}
{% endmacro %}

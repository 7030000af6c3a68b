{#-
  How the staged rows' columns differ from the Delta table's, by the rules of the DuckDB path
  (offline_store/delta_writer.py `_reconcile_schema`): a list of problems such as
  "added: birth_year", "removed: x", "changed type: y (bigint -> string)"; empty when they agree.
  Types that merely widen (integer to integer or floating, floating to floating, timestamp to
  timestamp, string to string) are not a change: the write casts them to the table's type.
  tests/cases/schema_changes.yml holds the type pairs both paths must agree on.
-#}
{% macro _spark_schema_changes(relation, stage, cfg) %}
  {%- set existing = {} -%}
  {%- for column in hindsight._spark_columns(relation) -%}{%- do existing.update({column.name: column.dtype | lower}) -%}{%- endfor -%}
  {%- set incoming = {} -%}
  {%- for column in hindsight._spark_columns(stage) -%}{%- do incoming.update({column.name: column.dtype | lower}) -%}{%- endfor -%}
  {%- set changed, removed, added = [], [], [] -%}
  {%- for name, dtype in incoming.items() -%}
    {%- if name not in existing -%}
      {%- do added.append(name) -%}
    {%- elif not hindsight._spark_type_compatible(dtype, existing[name]) -%}
      {%- do changed.append(name ~ ' (' ~ existing[name] ~ ' -> ' ~ dtype ~ ')') -%}
    {%- endif -%}
  {%- endfor -%}
  {%- for name in existing -%}
    {%- if name not in incoming -%}{%- do removed.append(name) -%}{%- endif -%}
  {%- endfor -%}
  {%- set problems = [] -%}
  {%- if changed -%}{%- do problems.append('changed type: ' ~ changed | join(', ')) -%}{%- endif -%}
  {%- if removed -%}{%- do problems.append('removed: ' ~ removed | join(', ')) -%}{%- endif -%}
  {%- if added -%}{%- do problems.append('added: ' ~ added | join(', ')) -%}{%- endif -%}
  {{ return(problems) }}
{% endmacro %}


{#- The staged columns the table lacks (Column objects, for ALTER TABLE ADD COLUMNS). -#}
{% macro _spark_added_columns(relation, stage) %}
  {%- set existing = hindsight._spark_columns(relation) | map(attribute='name') | list -%}
  {{ return(hindsight._spark_columns(stage) | rejectattr('name', 'in', existing) | list) }}
{% endmacro %}


{#-
  A relation's columns, from the schema of a query over it (analysed, not run). Not DESCRIBE: Sail
  lists no columns for a table registered over an existing Delta location, though it reads it.
-#}
{% macro _spark_columns(relation) %}
  {{ return(adapter.get_column_schema_from_query('select * from ' ~ relation)) }}
{% endmacro %}


{% macro _spark_type_compatible(incoming, existing) %}
  {%- if incoming == existing -%}{{ return(true) }}{%- endif -%}
  {%- set families = [
      ['tinyint', 'smallint', 'int', 'integer', 'bigint', 'byte', 'short', 'long'],
      ['float', 'double', 'real'],
      ['timestamp', 'timestamp_ntz', 'timestamp_ltz'],
      ['string', 'varchar', 'char'],
  ] -%}
  {%- set base_in = incoming.split('(')[0] | trim -%}
  {%- set base_ex = existing.split('(')[0] | trim -%}
  {%- for family in families -%}
    {%- if base_in in family and base_ex in family -%}{{ return(true) }}{%- endif -%}
  {%- endfor -%}
  {{ return(base_in in families[0] and base_ex in families[1]) }}
{% endmacro %}

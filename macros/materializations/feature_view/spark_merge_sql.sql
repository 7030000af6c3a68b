{#-
  The incremental and backfill write on Spark: one MERGE into the view's Delta table, on
  (entities, timestamp[, created]).
    incremental  new keys are inserted; a matched row is updated only if a value changed (NULL-safe;
                 floats within cfg.float_tolerance relative count as unchanged, as on DuckDB), so
                 a rerun touches nothing and commits nothing
    backfill     the same, plus WHEN NOT MATCHED BY SOURCE AND <range> THEN DELETE: rows of the
                 range that the recomputation no longer yields go, in the same commit; rows outside
                 [start, end) are never matched, updated or deleted
  A MERGE rather than INSERT ... REPLACE WHERE because open-source Delta on Spark has NOT MATCHED
  BY SOURCE (Delta 2.3+) and Sail has both.
  The incoming columns are checked against the table's first, with the DuckDB path's rules. With
  on_schema_change='append_new_columns', Spark adds new columns first (ALTER TABLE: one more
  commit); Sail cannot alter a Delta table's schema, so there it is an error naming the way out.
-#}
{% macro spark_merge_sql(relation, stage, cfg, range, capabilities) %}
  {%- set existing = hindsight._spark_columns(relation) -%}
  {%- set problems = hindsight._spark_schema_changes(relation, stage, cfg) -%}
  {%- set added = hindsight._spark_added_columns(relation, stage) -%}
  {%- if problems and not (cfg.on_schema_change == 'append_new_columns' and problems | length == 1 and added and capabilities.add_columns) -%}
    {%- set remedy = "Rebuild it with `dbt run --select " ~ cfg.model ~ " --full-refresh`" -%}
    {%- if not capabilities.add_columns -%}
      {%- set remedy = "Sail cannot change the schema of an existing Delta table: move or delete " ~ cfg.location ~ ", then run again" -%}
    {%- elif added and problems | length == 1 -%}
      {%- set remedy = remedy ~ ", or set on_schema_change='append_new_columns'" -%}
    {%- endif -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": the model's columns no longer match its Delta table (" ~ problems | join('; ') ~ "). The table was not changed. " ~ remedy ~ ".") }}
  {%- endif -%}
  {%- if added -%}
    {%- set definitions = [] -%}
    {%- for column in added -%}{%- do definitions.append(adapter.quote(column.name) ~ ' ' ~ column.dtype) -%}{%- endfor -%}
    {%- do run_query('alter table ' ~ relation ~ ' add columns (' ~ definitions | join(', ') ~ ')') -%}
    {%- set existing = hindsight._spark_columns(relation) -%}
  {%- endif -%}

  {%- set types = {} -%}
  {%- for column in existing -%}{%- do types.update({column.name: column.dtype | lower}) -%}{%- endfor -%}
  {%- set source_columns = [] -%}
  {%- set changed = [] -%}
  {%- for column in hindsight._spark_columns(stage) -%}
    {%- set name = adapter.quote(column.name) -%}
    {%- set target_type = types.get(column.name, column.dtype | lower) -%}
    {%- if target_type != (column.dtype | lower) -%}
      {%- do source_columns.append('cast(' ~ name ~ ' as ' ~ target_type ~ ') as ' ~ name) -%}
    {%- else -%}
      {%- do source_columns.append(name) -%}
    {%- endif -%}
    {%- if column.name not in cfg.unique_key and not (cfg.derived_partition and column.name in cfg.partition_by) -%}
      {%- do changed.append(hindsight._spark_value_changed(column.name, target_type, cfg.float_tolerance)) -%}
    {%- endif -%}
  {%- endfor -%}

  {%- set on = [] -%}
  {%- for key in cfg.unique_key -%}
    {%- do on.append('t.' ~ adapter.quote(key) ~ ' = s.' ~ adapter.quote(key)) -%}
  {%- endfor -%}
  {%- set in_range = hindsight.range_predicate('t.' ~ adapter.quote(cfg.timestamp_field), range) if range.mode == 'backfill' else none -%}
  {#- Push views: a pushed row is never updated or deleted, and its key is not inserted again
      (it matches): the push wins, as online (pushed_rows.sql). -#}
  {%- set computed = ('t.' ~ adapter.quote(hindsight.pushed_at_column()) ~ ' is null and ') if cfg.push else '' -%}
  {%- if in_range -%}{%- do on.append(in_range) -%}{%- endif -%}
  {%- do on.extend(hindsight._spark_partition_pruning(cfg, range)) -%}

  {%- set sql -%}
    merge into {{ relation }} as t
    using (select {{ source_columns | join(', ') }} from {{ stage }}) as s
    on {{ on | join('\n      and ') }}
    {%- if changed %}
    when matched and {{ computed }}({{ changed | join('\n      or ') }}) then update set *
    {%- endif %}
    when not matched then insert *
    {%- if in_range %}
    when not matched by source and {{ computed }}{{ in_range }} then delete
    {%- endif %}
  {%- endset -%}
  {{ return(sql) }}
{% endmacro %}


{#- `t.c` and `s.c` differ: NULL-safe, and beyond `tolerance` (relative) for floating-point columns. -#}
{% macro _spark_value_changed(name, dtype, tolerance) %}
  {%- set t, s = 't.' ~ adapter.quote(name), 's.' ~ adapter.quote(name) -%}
  {%- set distinct = 'not (' ~ t ~ ' <=> ' ~ s ~ ')' -%}
  {%- if dtype not in ['double', 'float', 'real'] -%}
    {{ return('(' ~ distinct ~ ')') }}
  {%- endif -%}
  {{ return('(' ~ distinct ~ ' and not coalesce(abs(' ~ t ~ ' - ' ~ s ~ ') <= ' ~ tolerance ~ ' * greatest(abs(' ~ t ~ '), abs(' ~ s ~ ')), false))') }}
{% endmacro %}


{#-
  Restricts the MERGE's target scan to the partitions the new rows can fall in: on an incremental
  run by event time, every row is at or after the range start; a backfill's range bounds both ends.
  Runs selected by created time (views with a created_field) may touch any partition.
-#}
{% macro _spark_partition_pruning(cfg, range) %}
  {%- if not cfg.derived_partition or range.start is none or range.column != cfg.timestamp_field -%}
    {{ return([]) }}
  {%- endif -%}
  {%- set column = cfg.partition_by[0] -%}
  {%- set clauses = ["t." ~ column ~ " >= cast('" ~ hindsight.derived_partition_of(column, range.start) ~ "' as date)"] -%}
  {%- if range.end is not none -%}
    {%- do clauses.append("t." ~ column ~ " <= cast('" ~ hindsight.derived_partition_of(column, range.end) ~ "' as date)") -%}
  {%- endif -%}
  {{ return(clauses) }}
{% endmacro %}

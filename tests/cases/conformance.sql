{#-
  Feeds the shared case tables to the dbt side of each rule in ONE run-operation and prints the
  answers as JSON after a marker line; tests/integration/test_conformance_jinja.py copies this
  file into a project's macros/ and compares the answers with the tables.
  Invalid inputs come back as none: the macros' raising wrappers are thin (parse_duration,
  feature_view_location), and a raised error would end the run at the first case.
-#}
{% macro hindsight_conformance(durations, locations, partitions, type_pairs, tile_columns=none, event_logs=none, derived=none) %}
  {%- set out = {'durations': [], 'locations': [], 'partitions': [], 'type_pairs': [],
                 'tile_features': [], 'tile_default_names': [], 'tile_parts': [], 'event_logs': [],
                 'derived_of': [], 'derived_sql': [], 'derived_choice': []} -%}
  {#- A derived partition's value twice: from Jinja (MERGE pruning bounds) and from the engine's SQL. -#}
  {%- for case in (derived or {}).get('values', []) -%}
    {%- do out.derived_of.append(hindsight.derived_partition_of(case.column, modules.datetime.datetime.fromisoformat(case.moment))) -%}
    {%- set value = hindsight.derived_partition_value(case.column, 'ts') -%}
    {%- set row = run_query("select cast(" ~ value ~ " as varchar) from (select cast('" ~ case.moment ~ "+00:00' as timestamptz) as ts) as t")[0] -%}
    {%- do out.derived_sql.append(row[0]) -%}
  {%- endfor -%}
  {%- for case in (derived or {}).get('choice', []) -%}
    {%- do out.derived_choice.append(hindsight.derived_partition_for(case.rows, case.days)) -%}
  {%- endfor -%}
  {%- for text in durations -%}
    {%- do out.durations.append(hindsight._duration_seconds(text)) -%}
  {%- endfor -%}
  {%- for case in locations -%}
    {%- do out.locations.append(hindsight._feature_view_location(case.location, case.location_root, case.identifier)) -%}
  {%- endfor -%}
  {%- for partition_by in partitions -%}
    {%- do out.partitions.append(hindsight.feature_view_partition_by(partition_by)) -%}
  {%- endfor -%}
  {%- for pair in type_pairs -%}
    {%- do out.type_pairs.append(hindsight._spark_type_compatible(pair[0], pair[1])) -%}
  {%- endfor -%}
  {%- for case in (tile_columns or {}).get('features', []) -%}
    {%- do out.tile_features.append(hindsight.tile_feature_name(case.name, case.function, case.window)) -%}
  {%- endfor -%}
  {%- for case in (tile_columns or {}).get('default_names', []) -%}
    {%- do out.tile_default_names.append(hindsight.tile_default_name(case.column)) -%}
  {%- endfor -%}
  {%- for case in (tile_columns or {}).get('parts', []) -%}
    {%- do out.tile_parts.append(hindsight.tile_parts_needed(case.column, case.functions)) -%}
  {%- endfor -%}
  {%- for case in event_logs or [] -%}
    {%- do out.event_logs.append(hindsight.event_log_location(case.source, case.table, case.location, case.offline_store)) -%}
  {%- endfor -%}
  {{ print('HINDSIGHT_CONFORMANCE ' ~ tojson(out)) }}
{% endmacro %}

{#-
  Checks a feature view's output before anything is written; the first broken rule raises a
  compiler error naming the model, the column and the rule, and the Delta table stays as it was.
  validate_feature_view_columns runs on a view of the model's SQL (nothing executes yet):
    1. entity, timestamp and created columns exist
    2. their types are usable (keys: integer or string; times: timestamp or date)
    3. no reserved column (_partition_date, _partition_month, _hs_pushed_at) in the model's output
  validate_feature_view_rows runs on the staged rows of this run's range, on every mode (full
  refresh, incremental, backfill), and returns how many rows are staged and, with `count_days`, on
  how many distinct days of timestamp_field (a derived partition's grain is chosen from them):
    4. no NULL keys
    5. no duplicate (entities, timestamp[, created]) rows (an aggregation view's tiles are unique by construction: not queried)
-#}
{% macro validate_feature_view_columns(relation, cfg) %}
  {%- set columns = adapter.get_columns_in_relation(relation) -%}
  {%- set types = {} -%}
  {%- for column in columns -%}
    {%- do types.update({column.name: column.dtype | lower}) -%}
  {%- endfor -%}
  {%- set fail = cfg.where ~ ": rule '" -%}
  {%- set unchanged = " The Delta table was not changed." -%}

  {%- set time_columns = [cfg.timestamp_field] + ([cfg.created_field] if cfg.created_field else []) -%}
  {%- for name in cfg.entities + time_columns -%}
    {%- if name not in types -%}
      {{ exceptions.raise_compiler_error(fail ~ "key columns exist' failed: column " ~ name ~ " is not in the model's output (columns: " ~ types.keys() | list | join(', ') ~ ")." ~ unchanged) }}
    {%- endif -%}
  {%- endfor -%}
  {%- for name in cfg.entities -%}
    {%- if not hindsight._is_key_type(types[name]) -%}
      {{ exceptions.raise_compiler_error(fail ~ "entity columns are integers or strings' failed: column " ~ name ~ " has type " ~ types[name] ~ "." ~ unchanged) }}
    {%- endif -%}
  {%- endfor -%}
  {%- for name in time_columns -%}
    {%- if not (types[name].startswith('timestamp') or types[name] == 'date') -%}
      {{ exceptions.raise_compiler_error(fail ~ "time columns are timestamps' failed: column " ~ name ~ " has type " ~ types[name] ~ "; cast it to timestamp." ~ unchanged) }}
    {%- endif -%}
  {%- endfor -%}
  {%- if hindsight.pushed_at_column() in types -%}
    {{ exceptions.raise_compiler_error(fail ~ "reserved columns' failed: column " ~ hindsight.pushed_at_column() ~ " marks pushed rows; rename it." ~ unchanged) }}
  {%- endif -%}
  {%- for name in hindsight.derived_partition_grains() if cfg.derived_partition and name in types -%}
    {{ exceptions.raise_compiler_error(fail ~ "reserved columns' failed: column " ~ name ~ " is added by the materialization; rename it or set partition_by." ~ unchanged) }}
  {%- endfor -%}
{% endmacro %}

{% macro validate_feature_view_rows(relation, cfg, count_days=false) %}
  {%- set fail = cfg.where ~ ": rule '" -%}
  {%- set unchanged = " The Delta table was not changed." -%}

  {%- set keys = cfg.unique_key -%}
  {%- set null_counts -%}
    select
    {%- for name in keys %}
      sum(case when {{ adapter.quote(name) }} is null then 1 else 0 end) as {{ adapter.quote(name) }},
    {%- endfor %}
      count(*) as hs_staged_rows
      {%- if count_days %},
      count(distinct cast({{ adapter.quote(cfg.timestamp_field) }} as date)) as hs_staged_days
      {%- endif %}
    from {{ relation }}
  {%- endset -%}
  {%- set row = run_query(null_counts)[0] -%}
  {%- for name in keys -%}
    {%- if row[loop.index0] and row[loop.index0] > 0 -%}
      {{ exceptions.raise_compiler_error(fail ~ "no NULL keys' failed: column " ~ name ~ " is NULL in " ~ row[loop.index0] ~ " row(s)." ~ unchanged) }}
    {%- endif -%}
  {%- endfor -%}

  {#- An aggregation view's tile rows come from a GROUP BY on (entities, event time) (aggregation_tiles),
      so they cannot repeat a key: the check would only cost a full aggregation of the staged rows
      (about a tenth of a full refresh of 10M events). -#}
  {%- set staged = {'rows': row[keys | length] or 0, 'days': row[keys | length + 1] if count_days else none} -%}
  {%- if cfg.aggregation -%}
    {{ return(staged) }}
  {%- endif -%}
  {%- set quoted_keys = [] -%}
  {%- for name in keys -%}{%- do quoted_keys.append(adapter.quote(name)) -%}{%- endfor -%}
  {%- set duplicates -%}
    select {{ quoted_keys | join(', ') }}, count(*) as n, count(*) over () as groups
    from {{ relation }}
    group by {{ quoted_keys | join(', ') }}
    having count(*) > 1
    limit 1
  {%- endset -%}
  {%- set found = run_query(duplicates) -%}
  {%- if found | length > 0 -%}
    {%- set example = [] -%}
    {%- for name in keys -%}{%- do example.append(name ~ '=' ~ found[0][loop.index0]) -%}{%- endfor -%}
    {{ exceptions.raise_compiler_error(fail ~ "unique (" ~ keys | join(', ') ~ ")' failed: " ~ found[0][-1] ~ " key(s) occur more than once, e.g. " ~ example | join(', ') ~ " (" ~ found[0][-2] ~ " rows)." ~ unchanged) }}
  {%- endif -%}
  {{ return(staged) }}
{% endmacro %}

{% macro _is_key_type(dtype) %}
  {%- set integer_types = ['tinyint', 'smallint', 'integer', 'int', 'bigint', 'hugeint', 'utinyint', 'usmallint', 'uinteger', 'ubigint', 'int8', 'int4', 'int2', 'long', 'short', 'byte'] -%}
  {%- set string_types = ['varchar', 'string', 'text', 'char'] -%}
  {%- set base = dtype.split('(')[0] | trim -%}
  {{ return(base in integer_types or base in string_types) }}
{% endmacro %}


{#-
  Every feature of a view needs a description in the model's .yml: dbt docs is the feature catalog,
  and a feature nobody can read about is one nobody can safely use. Checked after the rows are
  validated, before anything is written; fails naming each feature and the file to add it to.
  A prototype may set the var hindsight_require_descriptions: false (dbt_project.yml or --vars).
-#}
{% macro require_feature_descriptions(relation, cfg) %}
  {#- The one way past it, for a prototype: var hindsight_require_descriptions: false. -#}
  {%- if var('hindsight_require_descriptions', true) in [false, 'false'] -%}{{ return(none) }}{%- endif -%}
  {%- set features = [] -%}
  {%- if cfg.aggregation -%}
    {#- An aggregation view's features are its declared aggregations; its columns are tiles. -#}
    {%- for feature in cfg.aggregation.features -%}{%- do features.append(feature.name) -%}{%- endfor -%}
  {%- else -%}
    {%- set not_features = cfg.entities + [cfg.timestamp_field] + ([cfg.created_field] if cfg.created_field else []) + cfg.partition_by + [hindsight.pushed_at_column()] -%}
    {%- for column in adapter.get_columns_in_relation(relation) if column.name not in not_features -%}
      {%- do features.append(column.name) -%}
    {%- endfor -%}
  {%- endif -%}
  {%- set documented = model.columns or {} -%}
  {%- set missing = [] -%}
  {%- for name in features -%}
    {%- set entry = documented.get(name) or documented.get(name | lower) or {} -%}
    {%- if not ((entry.get('description') or '') | trim) -%}{%- do missing.append(name) -%}{%- endif -%}
  {%- endfor -%}
  {%- if missing -%}
    {%- set yml = (model.patch_path or '').split('://') | last or (model.original_file_path[:-4] ~ '.yml') -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": rule 'every feature has a description' failed: "
        ~ missing | length ~ " feature(s) without one: " ~ missing | join(', ') ~ ". Describe each under "
        ~ "`columns:` of model " ~ cfg.model ~ " in " ~ yml ~ " (`- name: " ~ missing[0]
        ~ "` with a `description:`); the catalog (dbt docs) shows them. The Delta table was not changed.") }}
  {%- endif -%}
{% endmacro %}

{#-
  The breaking-change gate on Spark, before anything is written: the rules of the DuckDB path
  (offline_store/contracts.py `breaches`, offline_store/delta_writer.py `_check_contract`) over the
  same file, <registry>/contracts.jsonl, which `hindsight apply` writes. Jinja cannot call that
  Python on Spark, so the rules are repeated here; tests/integration/test_spark_contract_gate.py
  holds both to the same message.

  A write breaks a contract when, once committed, the table would lack a feature an applied
  service (or on-demand view) uses, give it or a join key another Delta type, or have other join
  keys. Breaches the table already has (written with hindsight_allow_breaking, not yet applied) do
  not count. var hindsight_allow_breaking turns the refusal into a warning.

  The engine reads the file, so the Spark server must see the registry folder: Sail started by
  `hindsight spark up` runs in the project folder and reads a missing file as no rows. Apache Spark
  raises on a missing path, and a remote cluster does not see the dbt machine's folders: there the
  gate is `hindsight plan` (exit 1 on a breaking change) in CI, and this check is skipped.
-#}
{% macro spark_check_contract(relation, stage, cfg, exists, mode) %}
  {%- if not hindsight.spark_capabilities().read_local_files -%}{{ return(none) }}{%- endif -%}
  {%- set path = hindsight.registry_location().rstrip('/') ~ '/contracts.jsonl' -%}
  {%- set source = "json.`" ~ path ~ "`" -%}
  {#- A missing (or empty) file has no columns at all. -#}
  {%- if 'view' not in run_query("select * from " ~ source ~ " limit 1").column_names -%}{{ return(none) }}{%- endif -%}
  {%- set records = run_query("select `column`, `role`, `type`, concat_ws('|', used_by) as used_by from " ~ source ~ " where `view` = '" ~ hindsight.spark_string(cfg.model) ~ "'") -%}
  {%- set contract = {'keys': [], 'key_types': {}, 'features': {}} -%}
  {%- for record in records -%}
    {%- if record[1] == 'key' -%}
      {%- do contract['keys'].append(record[0]) -%}
      {%- do contract['key_types'].update({record[0]: record[2]}) -%}
    {%- else -%}
      {%- do contract['features'].update({record[0]: {'type': record[2], 'used_by': (record[3] or '').split('|')}}) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if not contract['keys'] and not contract['features'] -%}{{ return(none) }}{%- endif -%}

  {%- set incoming = hindsight._spark_delta_types(hindsight._spark_columns(stage)) -%}
  {%- set after = incoming -%}
  {%- set before = none -%}
  {%- if exists -%}
    {%- set before = hindsight._spark_delta_types(hindsight._spark_columns(relation)) -%}
    {%- if mode != 'full_refresh' -%}
      {#- Incremental writes cast compatible columns to the table's type. -#}
      {%- set after = {} -%}
      {%- set existing = {} -%}
      {%- for column in hindsight._spark_columns(relation) -%}{%- do existing.update({column.name: column.dtype | lower}) -%}{%- endfor -%}
      {%- for column in hindsight._spark_columns(stage) -%}
        {%- set keep = column.name in existing and hindsight._spark_type_compatible(column.dtype | lower, existing[column.name]) -%}
        {%- do after.update({column.name: before[column.name] if keep else incoming[column.name]}) -%}
      {%- endfor -%}
    {%- endif -%}
  {%- endif -%}

  {%- set found = hindsight._spark_breaches(contract, after, cfg.entities) -%}
  {%- if before is not none -%}
    {%- set already = hindsight._spark_breaches(contract, before, contract['keys']) -%}
    {%- set found = found | reject('in', already) | list -%}
  {%- endif -%}
  {%- if not found -%}{{ return(none) }}{%- endif -%}
  {%- if cfg.allow_breaking -%}
    {%- for breach in found -%}
      {{ log("hindsight: " ~ cfg.model ~ ": breaking change written because hindsight_allow_breaking is set: " ~ breach ~ "; run `hindsight apply --allow-breaking` so the services' contracts follow", info=true) }}
    {%- endfor -%}
    {{ return(none) }}
  {%- endif -%}
  {{ exceptions.raise_compiler_error("feature view " ~ cfg.model ~ ": refusing a breaking change: " ~ found | join('; ') ~ ". The Delta table was not changed. To make the change anyway: dbt run --select " ~ cfg.model ~ " --full-refresh --vars '{\"hindsight_allow_breaking\": true}', then `hindsight apply --allow-breaking` so the services' contracts follow.") }}
{% endmacro %}


{#- The breaches of `contract` by a table with column types `types` and join keys `keys`, as text. -#}
{% macro _spark_breaches(contract, types, keys) %}
  {%- set everyone = [] -%}
  {%- for spec in contract['features'].values() -%}{%- do everyone.extend(spec.used_by) -%}{%- endfor -%}
  {%- set everyone = " (used by " ~ everyone | unique | sort | join(', ') ~ ")" -%}
  {%- set found = [] -%}
  {%- if contract['keys'] | list != keys | list -%}
    {%- do found.append("join keys change " ~ hindsight._python_list(contract['keys']) ~ " -> " ~ hindsight._python_list(keys) ~ everyone) -%}
  {%- endif -%}
  {%- for name in contract['keys'] if name in types and types[name] != contract['key_types'][name] -%}
    {%- do found.append(name ~ " changes type " ~ contract['key_types'][name] ~ " -> " ~ types[name] ~ everyone) -%}
  {%- endfor -%}
  {%- for name, spec in contract['features'] | dictsort -%}
    {%- set users = " (used by " ~ spec.used_by | join(', ') ~ ")" -%}
    {%- if name not in types -%}
      {%- do found.append(name ~ " (" ~ spec.type ~ ") is removed" ~ users) -%}
    {%- elif types[name] != spec.type -%}
      {%- do found.append(name ~ " changes type " ~ spec.type ~ " -> " ~ types[name] ~ users) -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(found) }}
{% endmacro %}


{#- Column -> Delta type name (long, integer, double, string, timestamp, ...) of Spark columns. -#}
{% macro _spark_delta_types(columns) %}
  {%- set spark_to_delta = {'bigint': 'long', 'int': 'integer', 'smallint': 'short', 'tinyint': 'byte', 'real': 'float', 'timestamp_ltz': 'timestamp'} -%}
  {%- set types = {} -%}
  {%- for column in columns -%}
    {%- set dtype = (column.dtype | lower).replace(' ', '') -%}
    {%- do types.update({column.name: spark_to_delta.get(dtype, dtype)}) -%}
  {%- endfor -%}
  {{ return(types) }}
{% endmacro %}


{#- ['a', 'b'], as Python prints a list of strings (the DuckDB path's message). -#}
{% macro _python_list(names) %}
  {{- return("[" ~ names | map('string') | map('tojson') | join(', ') | replace('"', "'") ~ "]") -}}
{% endmacro %}

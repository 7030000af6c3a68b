{#-
  Whether the current feature view's Delta table exists, so this run can be incremental or a
  backfill. Called by is_incremental() and the backfill check, at compile time.
-#}
{% macro feature_view_exists() %}
  {{- return(adapter.dispatch('feature_view_exists', 'hindsight')()) -}}
{% endmacro %}

{% macro default__feature_view_exists() %}
  {{ return(adapter.get_relation(this.database, this.schema, this.identifier) is not none) }}
{% endmacro %}

{#-
  Spark: the Delta table at the view's location decides, not the catalog, which Sail loses on
  every restart and which points elsewhere once HINDSIGHT_OFFLINE_STORE moves. The catalog entry
  is made to match: an entry at another location is dropped (external tables only: their files
  stay), and a table found at the location is registered instead of being rebuilt.
  Probing a location that may hold nothing raises on Apache Spark, so there the catalog decides,
  as a metastore persists; on Sail a listing of <location>/_delta_log is empty when there is no
  table. The catalog is read directly, not from dbt's relation cache, which this macro changes.
-#}
{% macro spark__feature_view_exists() %}
  {%- set cfg = hindsight.feature_view_config() -%}
  {%- set location = hindsight._spark_normalized_location(cfg.location) -%}
  {%- set entry = hindsight._spark_catalog_entry(this) -%}
  {%- if entry is not none and hindsight._spark_entry_location(entry) != location -%}
    {%- do hindsight.spark_drop_external_table(this, entry) -%}
    {%- set entry = none -%}
  {%- endif -%}
  {%- if hindsight.spark_engine() == 'sail' -%}
    {%- set probe = "select count(*) from binaryFile.`" ~ cfg.location.rstrip('/') ~ "/_delta_log`" -%}
    {%- set found = run_query(probe)[0][0] > 0 -%}
  {%- else -%}
    {%- set found = entry is not none -%}
  {%- endif -%}
  {%- if found and entry is none -%}
    {%- do hindsight.spark_register_delta_table(this, cfg.location) -%}
  {%- endif -%}
  {{ return(found) }}
{% endmacro %}

{#- The catalog's description of `relation` (SHOW TABLE EXTENDED's information), or none. -#}
{% macro _spark_catalog_entry(relation) %}
  {%- do run_query('create schema if not exists ' ~ adapter.quote(relation.schema)) -%}
  {%- set rows = run_query('show table extended in ' ~ adapter.quote(relation.schema) ~ " like '" ~ relation.identifier ~ "'") -%}
  {%- for row in rows if row[1] == relation.identifier -%}
    {{ return(row[3] or '') }}
  {%- endfor -%}
  {{ return(none) }}
{% endmacro %}

{#- Where a catalog entry says its table lives (normalised), or none. -#}
{% macro _spark_entry_location(entry) %}
  {%- set found = modules.re.search('(?m)^Location: (.*)$', entry) -%}
  {{ return(hindsight._spark_normalized_location(found.group(1)) if found else none) }}
{% endmacro %}

{#- Locations compare equal whatever the engine adds: file: schemes, trailing slashes. -#}
{% macro _spark_normalized_location(location) %}
  {%- set text = (location | string).strip().rstrip('/') -%}
  {{ return(modules.re.sub('^file:(//)?', '', text)) }}
{% endmacro %}

{#-
  Keeps the catalog in step with the feature views' Delta tables before any model is compiled, so
  is_incremental() can answer from the catalog alone (feature_view_exists.sql). An `on-run-start`
  hook (dbt_project.yml) that acts in `dbt run`, `build`, `test`, `seed` and `snapshot`, never in
  `dbt compile` or `dbt docs generate` (is_build_command), which must not change the catalog.
  Renders no SQL.
-#}
{% macro register_feature_views() %}
  {{- return(adapter.dispatch('register_feature_views', 'hindsight')()) -}}
{% endmacro %}

{#- DuckDB: the materialization reads the table at its location itself (delta_table_rows); nothing to do. -#}
{% macro duckdb__register_feature_views() %}
  {{ return('') }}
{% endmacro %}

{% macro default__register_feature_views() %}
  {{ hindsight.unsupported_adapter('register_feature_views') }}
{% endmacro %}

{#-
  Spark, for each selected feature view: the Delta table at the view's location decides, not the
  catalog, which Sail loses on every restart and which points elsewhere once
  HINDSIGHT_OFFLINE_STORE moves. An entry at another location is dropped (external tables only:
  their files stay), and a table found at the location is registered instead of being rebuilt.
  Finding a table without a catalog entry takes a listing of <location>/_delta_log, which answers
  with no rows for a missing path on Sail but raises on Apache Spark: there the catalog (a
  persistent metastore) decides. Reads dbt's relation cache, filled just before on-run-start.
-#}
{% macro spark__register_feature_views() %}
  {%- if not hindsight.is_build_command() -%}{{ return('') }}{%- endif -%}
  {%- set list_location = hindsight.spark_capabilities()['list_location'] -%}
  {%- for node in graph.nodes.values()
        if node.resource_type == 'model' and node.config.materialized == 'feature_view'
        and node.unique_id in selected_resources -%}
    {%- set relation = api.Relation.create(database=node.database, schema=node.schema, identifier=node.alias, type='table') -%}
    {%- set where = "feature view " ~ node.name -%}
    {%- set location_root = node.config.get('location_root') or hindsight.project_setting('offline_store') -%}
    {%- set location = hindsight.feature_view_location(node.config.get('location'), location_root, node.alias, where) -%}
    {%- set entry = none -%}
    {%- if adapter.get_relation(relation.database, relation.schema, relation.identifier) is not none -%}
      {%- set entry = hindsight._spark_catalog_entry(relation) -%}
    {%- endif -%}
    {%- if entry is not none and hindsight._spark_entry_location(entry) != hindsight._spark_normalized_location(location) -%}
      {%- do hindsight.spark_drop_external_table(relation, entry) -%}
      {%- set entry = none -%}
    {%- endif -%}
    {%- if entry is none and list_location -%}
      {%- if run_query("select count(*) from binaryFile.`" ~ location.rstrip('/') ~ "/_delta_log`")[0][0] > 0 -%}
        {%- do hindsight.spark_register_delta_table(relation, location) -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return('') }}
{% endmacro %}

{#- The catalog's description of `relation` (SHOW TABLE EXTENDED's information), or none. -#}
{% macro _spark_catalog_entry(relation) %}
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

{#-
  Stages a feature view's rows on Spark, so the model's SQL runs once: `staged_sql` is computed
  into `stage` (a temporary view name of this session), and the checks and the write read that.
  How, by the engine's capability (spark_capabilities().staging):
    cache  Apache Spark, Databricks: CACHE TABLE <stage> AS <select> computes the rows once, eagerly,
           and keeps them on the executors (memory, spilling to disk) until spark_drop_stage.
    table  Sail, which has no CACHE TABLE: the rows are written once as Parquet to a scratch folder,
           <state>/spark_staging/<view> (the Sail server's disk: `hindsight spark up` runs it in the
           project folder), and <stage> is a temporary view over those files with the rows' own
           column types (so an empty stage, which leaves no file, still has its columns).
           spark_drop_stage empties the folder; a run that fails a check leaves the files until
           the view's next run replaces them.
  Temporary views, not stored views: Sail re-parses a stored view's SQL without its backticks.
-#}
{% macro spark_stage_rows(stage, staged_sql, capabilities) %}
  {%- do hindsight.spark_drop_stage(stage, capabilities, empty_scratch=false) -%}
  {%- if capabilities.staging == 'cache' -%}
    {% call statement('stage') -%}
      cache table {{ stage }} as
      {{ staged_sql }}
    {%- endcall %}
  {%- elif capabilities.staging == 'table' -%}
    {%- set columns = adapter.get_column_schema_from_query(staged_sql) -%}
    {%- set folder = hindsight._spark_scratch_folder() -%}
    {% call statement('stage') -%}
      insert overwrite directory '{{ hindsight.spark_string(folder) }}' using parquet
      {{ staged_sql }}
    {%- endcall %}
    {%- set schema = [] -%}
    {%- for column in columns -%}{%- do schema.append(adapter.quote(column.name) ~ ' ' ~ column.dtype) -%}{%- endfor -%}
    {% call statement('stage_view') -%}
      create or replace temporary view {{ stage }} ({{ schema | join(', ') }})
      using parquet options (path '{{ hindsight.spark_string(folder) }}')
    {%- endcall %}
  {%- else -%}
    {{ exceptions.raise_compiler_error("hindsight: unknown Spark staging '" ~ capabilities.staging ~ "'; expected cache or table.") }}
  {%- endif -%}
{% endmacro %}

{#- Releases what spark_stage_rows made: the cached rows, or the scratch folder's files (empty_scratch). -#}
{% macro spark_drop_stage(stage, capabilities, empty_scratch=true) %}
  {%- if capabilities.staging == 'cache' -%}
    {% call statement('uncache_stage') -%}
      uncache table if exists {{ stage }}
    {%- endcall %}
  {%- elif empty_scratch -%}
    {#- An empty result leaves the folder with no files at all. Not run_query: fetching this
        statement's result (a row count) fails in the Spark Connect client on Sail. -#}
    {% call statement('empty_stage') -%}
      insert overwrite directory '{{ hindsight.spark_string(hindsight._spark_scratch_folder()) }}' using parquet
      select 1 as hs_empty where false
    {%- endcall %}
  {%- endif -%}
  {% call statement('drop_stage') -%}
    drop view if exists {{ stage }}
  {%- endcall %}
{% endmacro %}

{#- The current view's scratch folder for staged rows (staging 'table'). -#}
{% macro _spark_scratch_folder() %}
  {{ return(hindsight.project_setting('state').rstrip('/') ~ '/spark_staging/' ~ this.identifier) }}
{% endmacro %}

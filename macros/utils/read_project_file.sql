{#-
  The text of a small file beside dbt_project.yml (hindsight.yml), or none if there is no such file.
  dbt's Jinja has no file access, so the engine reads it.
-#}
{% macro read_project_file(path) %}
  {{- return(adapter.dispatch('read_project_file', 'hindsight')(path)) -}}
{% endmacro %}

{% macro default__read_project_file(path) %}
  {{ hindsight.unsupported_adapter('read_project_file') }}
{% endmacro %}

{#- DuckDB: glob() says whether the file exists (read_text fails on a missing one), read_text() reads it. -#}
{% macro duckdb__read_project_file(path) %}
  {%- set literal = "'" ~ (path | string).replace("'", "''") ~ "'" -%}
  {%- if run_query('select count(*) from glob(' ~ literal ~ ')').rows[0][0] == 0 -%}
    {{- return(none) -}}
  {%- endif -%}
  {{- return(run_query('select content from read_text(' ~ literal ~ ')').rows[0][0]) -}}
{% endmacro %}

{#-
  Spark: the text source reads the file on the Spark server, one row per line (the path must be
  visible there, as it is for a local Sail started by `hindsight spark up`).
-#}
{% macro spark__read_project_file(path) %}
  {%- set found = run_query("select concat_ws(char(10), collect_list(value)) from text.`" ~ (path | string).replace('`', '``') ~ "`") -%}
  {{- return(found.rows[0][0] if found and found.rows | length > 0 else none) -}}
{% endmacro %}

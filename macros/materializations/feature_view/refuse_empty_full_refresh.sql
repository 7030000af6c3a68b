{#-
  A full refresh that computed no rows would empty the view's Delta table (a source gone empty, a
  broken filter): refused unless allowed, naming how many rows the table holds. Allowed by config
  allow_empty_full_refresh=true or, for one run, --vars '{"allow_empty_full_refresh": true}'.
  `staged_rows`: how many rows validate_feature_view_rows counted.
-#}
{% macro refuse_empty_full_refresh(staged_rows, cfg, range) %}
  {%- if range.mode != 'full_refresh' or staged_rows > 0 or cfg.allow_empty_full_refresh -%}
    {{ return(none) }}
  {%- endif -%}
  {#- A push view's full refresh keeps its pushed rows (unless dropped): they do not count. -#}
  {%- set held = hindsight.delta_table_rows(cfg.location, none if cfg.drop_pushed_rows else cfg) -%}
  {%- if held -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": rule 'a full refresh never empties the table silently' failed: the full refresh computed 0 rows, but the Delta table holds " ~ held ~ " rows. The Delta table was not changed. If the source really is empty, rerun with --vars '{\"allow_empty_full_refresh\": true}' (or set config allow_empty_full_refresh=true).") }}
  {%- endif -%}
{% endmacro %}

{#- Rows in the Delta table at `location`, or none when there is no table there. -#}
{% macro delta_table_rows(location, computed_of=none) %}
  {{- return(adapter.dispatch('delta_table_rows', 'hindsight')(location, computed_of)) -}}
{% endmacro %}

{#- `computed_of`: a feature view's cfg, to count only the rows its model computed (not pushed ones). -#}
{% macro _table_rows_where(location, computed_of) %}
  {{- return('' if computed_of is none else ' where ' ~ hindsight.computed_rows_predicate(computed_of, location)) -}}
{% endmacro %}

{% macro default__delta_table_rows(location, computed_of=none) %}
  {{ hindsight.unsupported_adapter('delta_table_rows') }}
{% endmacro %}

{#- Spark: the catalog knows the table (register_feature_views registered one found at its location). -#}
{% macro spark__delta_table_rows(location, computed_of=none) %}
  {%- if not hindsight.feature_view_exists() -%}{{ return(none) }}{%- endif -%}
  {{ return(run_query('select count(*) from ' ~ hindsight.feature_view_relation(location) ~ hindsight._table_rows_where(location, computed_of))[0][0]) }}
{% endmacro %}

{#- DuckDB: the catalog's view may be missing (a new DuckDB file) while the table exists: look for its log. -#}
{% macro duckdb__delta_table_rows(location, computed_of=none) %}
  {%- set log_files = run_query("select count(*) from glob('" ~ location.rstrip('/') ~ "/_delta_log/*')")[0][0] -%}
  {%- if log_files == 0 -%}{{ return(none) }}{%- endif -%}
  {{ return(run_query('select count(*) from ' ~ hindsight.feature_view_relation(location) ~ hindsight._table_rows_where(location, computed_of))[0][0]) }}
{% endmacro %}

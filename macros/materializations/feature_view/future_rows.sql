{#-
  Rows from the future: staged rows whose watermark column (created_field, else timestamp_field)
  is at or after this run's clock, range.now. Written now, they would move the incremental
  watermark past rows that have not arrived yet, and every later incremental run would skip those
  (see processing_range). Every mode (full refresh, incremental, backfill) applies the same rule,
  so an incremental table always equals a full refresh of the same source at the same time.
  Config `future_rows` says what happens to them:
    defer  (default) leave them out with a warning giving their count and newest value; the first
           run after their time writes them (the demo data has `loaded_at` up to two days ahead)
    fail   refuse the run, naming the count and the newest value; nothing is written
  future_rows(relation, cfg, range) counts the rows, applies the policy and returns the count;
  the materialization then drops them from its stage, keeping future_rows_kept(cfg, range).
-#}
{% macro future_rows(relation, cfg, range) %}
  {%- set column = adapter.quote(cfg.created_field or cfg.timestamp_field) -%}
  {%- set counted -%}
    select count(*), max({{ column }}) from {{ relation }} where {{ column }} >= {{ hindsight.timestamp_literal(range.now) }}
  {%- endset -%}
  {%- set row = run_query(counted)[0] -%}
  {%- set count = row[0] or 0 -%}
  {%- if count == 0 -%}
    {{ return(0) }}
  {%- endif -%}
  {%- set what = count ~ " row(s) with " ~ (cfg.created_field or cfg.timestamp_field) ~ " at or after this run's clock ("
      ~ range.now.isoformat(sep=' ', timespec='seconds') ~ " UTC; newest " ~ row[1] ~ ")" -%}
  {%- if cfg.future_rows == 'fail' -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": rule 'no rows from the future' failed: " ~ what ~ ". The Delta table was not changed. Fix the source's clock, or set future_rows='defer' to write such rows once their time has come.") }}
  {%- endif -%}
  {%- do exceptions.warn(cfg.where ~ ": deferred " ~ what ~ ": the first run after their time writes them (future_rows='defer').") -%}
  {{ return(count) }}
{% endmacro %}

{#- The predicate that keeps the rows that are not from the future (NULLs stay, for validation to name). -#}
{% macro future_rows_kept(cfg, range) %}
  {%- set column = adapter.quote(cfg.created_field or cfg.timestamp_field) -%}
  {{- return('(' ~ column ~ ' < ' ~ hindsight.timestamp_literal(range.now) ~ ' or ' ~ column ~ ' is null)') -}}
{% endmacro %}

{#-
  Which rows this run of the current feature view computes and writes:
    full_refresh  everything                              start = end = none
    incremental   from the table's newest timestamp minus `allowed_lateness` (late rows), onwards;
                  on a view with a created_field, by created time, so late corrections of old
                  events are picked up however old the event
    backfill      event times in [var backfill_start, var backfill_end)
  `column` names the output column the range applies to.
  `now` is the run's wall clock (dbt's run_started_at, naive UTC): in every mode the rows written
  have their watermark column (created_field, else timestamp_field) before it, and rows at or after
  it wait for a later run (future_rows.sql). So the table's newest watermark never passes the
  clock of the run that wrote it, and the next incremental run, starting from that newest value
  minus `allowed_lateness`, cannot skip a row a full refresh would write.
  Called by the materialization and by models (through source_time_filter / window_aggregates),
  so the rows read and the rows written always agree.
-#}
{% macro processing_range() %}
  {%- set now = hindsight._as_utc(run_started_at) -%}
  {%- set full = {'mode': 'full_refresh', 'start': none, 'end': none, 'column': none, 'now': now} -%}
  {%- if not execute or model.config.materialized != 'feature_view' -%}
    {{ return(full) }}
  {%- endif -%}
  {%- set cfg = hindsight.feature_view_config() -%}
  {%- set start = var('backfill_start', none) -%}
  {%- set end = var('backfill_end', none) -%}
  {%- if start is not none or end is not none -%}
    {{ return(hindsight._backfill_range(cfg, start, end, now)) }}
  {%- endif -%}
  {#- Qualified: in a user's project (Hindsight installed as a package) a bare is_incremental()
      here resolves to dbt's own, which says false for every feature_view model. -#}
  {%- if not hindsight.is_incremental() -%}
    {{ return(full) }}
  {%- endif -%}
  {%- set column = cfg.created_field or cfg.timestamp_field -%}
  {#- Rows at or after `now` can only be in a table written before future rows were held back:
      they must not move the watermark (a full refresh removes them). -#}
  {#- Pushed rows (push views) do not move it: only what the model computed before. -#}
  {%- set newest = run_query("select max(" ~ adapter.quote(column) ~ ") from " ~ hindsight.feature_view_relation(cfg.location)
      ~ " where " ~ adapter.quote(column) ~ " < " ~ hindsight.timestamp_literal(now)
      ~ " and " ~ hindsight.computed_rows_predicate(cfg, cfg.location))[0][0] -%}
  {%- if newest is none -%}
    {{ return({'mode': 'incremental', 'start': none, 'end': none, 'column': column, 'now': now}) }}
  {%- endif -%}
  {%- set start = hindsight._as_utc(newest) - modules.datetime.timedelta(seconds=cfg.lateness_seconds) -%}
  {#- An aggregation view recomputes whole intervals: its tiles from floor(start, i) on need every
      event of their interval, and rows it rewrites unchanged are skipped by the write's diff. -#}
  {%- if cfg.aggregation -%}
    {%- set start = hindsight._interval_bound(start, cfg.aggregation.interval_seconds, 'floor') -%}
  {%- endif -%}
  {{ return({'mode': 'incremental', 'start': start, 'end': none, 'column': column, 'now': now}) }}
{% endmacro %}

{% macro _backfill_range(cfg, start, end, now) %}
  {%- if start is none or end is none -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": a backfill needs both vars backfill_start and backfill_end (end exclusive), e.g. --vars '{\"backfill_start\": \"2026-06-01\", \"backfill_end\": \"2026-06-02\"}'.") }}
  {%- endif -%}
  {%- set parsed = [] -%}
  {%- for value in [start, end] -%}
    {%- set text = value | string -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?', text) -%}
      {{ exceptions.raise_compiler_error(cfg.where ~ ": cannot read backfill bound '" ~ text ~ "': use YYYY-MM-DD or YYYY-MM-DD HH:MM:SS (UTC).") }}
    {%- endif -%}
    {%- do parsed.append(modules.datetime.datetime.fromisoformat(text.replace('T', ' '))) -%}
  {%- endfor -%}
  {%- if parsed[0] >= parsed[1] -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": backfill_start (" ~ start ~ ") must be before backfill_end (" ~ end ~ "); the range is [start, end).") }}
  {%- endif -%}
  {%- if not hindsight.feature_view_exists() -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": cannot backfill a feature view that was never built; run it once without backfill vars first.") }}
  {%- endif -%}
  {#- An aggregation view's tiles depend on their whole interval: a backfill replaces whole intervals. -#}
  {%- if cfg.aggregation -%}
    {%- set widened = [hindsight._interval_bound(parsed[0], cfg.aggregation.interval_seconds, 'floor'),
                       hindsight._interval_bound(parsed[1], cfg.aggregation.interval_seconds, 'ceil')] -%}
    {{ return({'mode': 'backfill', 'start': widened[0], 'end': widened[1], 'column': cfg.timestamp_field, 'now': now, 'requested': parsed}) }}
  {%- endif -%}
  {{ return({'mode': 'backfill', 'start': parsed[0], 'end': parsed[1], 'column': cfg.timestamp_field, 'now': now}) }}
{% endmacro %}

{#- The materialization's one log line for a backfill an aggregation view widened to whole intervals. -#}
{% macro log_widened_range(cfg, range) %}
  {%- set requested = range.get('requested') -%}
  {%- if requested and requested != [range.start, range.end] -%}
    {{ log(cfg.where ~ ": backfill [" ~ requested[0] ~ ", " ~ requested[1] ~ ") widened to whole aggregation intervals (" ~ cfg.aggregation.interval ~ "): [" ~ range.start ~ ", " ~ range.end ~ ").", info=true) }}
  {%- endif -%}
{% endmacro %}

{#- A naive UTC datetime rounded down ('floor') or up ('ceil') to a multiple of `seconds` since the Unix epoch. -#}
{% macro _interval_bound(moment, seconds, direction) %}
  {%- set epoch = modules.datetime.datetime(1970, 1, 1) -%}
  {%- set delta = moment - epoch -%}
  {%- set micros = delta.days * 86400000000 + delta.seconds * 1000000 + delta.microseconds -%}
  {%- set size = seconds * 1000000 -%}
  {%- set floored = (micros // size) * size -%}
  {%- set bound = floored + size if direction == 'ceil' and floored != micros else floored -%}
  {{ return(epoch + modules.datetime.timedelta(microseconds=bound)) }}
{% endmacro %}

{% macro _as_utc(value) %}
  {%- if value is string -%}
    {%- set value = modules.datetime.datetime.fromisoformat(value) -%}
  {%- endif -%}
  {#- A DATE time column: its day's midnight, as DuckDB and Spark compare a date with a timestamp. -#}
  {%- if value.hour is not defined -%}
    {%- set value = modules.datetime.datetime.combine(value, modules.datetime.time()) -%}
  {%- endif -%}
  {%- if value.tzinfo is not none -%}
    {%- set value = value.astimezone(modules.pytz.utc).replace(tzinfo=none) -%}
  {%- endif -%}
  {{ return(value) }}
{% endmacro %}

{#-
  Sliding-window aggregates per entity: the SQL counterpart of Tecton's aggregation engine.

  Arguments:
    relation      the events: a ref(), source() or CTE name
    entities      join-key column(s) of the events
    timestamp     the events' time column
    aggregations  list of {'column': 'amount', 'functions': ['sum', 'mean'], 'name': 'amount',
                  'windows': ['7d']} ('column': '*' counts events; 'name' defaults to the
                  column; 'windows' defaults to the macro's `windows`)
    windows       default windows, a list of durations, e.g. ['1h', '1d', '7d', '30d']
    evaluate      'event': one row at each event time (the aggregates as of that event)
                  a duration such as '1d': one row per entity at each grid point (multiples of the
                  step since the Unix epoch, UTC) while the entity has events within the longest
                  window; grid points run up to the one covering the newest event
    timestamp_alias  name of the output time column (default: `timestamp`)
    where         optional extra filter on the events

  Output: entities, the time column, then one column per (aggregation, function, window) named
  <name>_<function>_<window>, e.g. amount_sum_7d. A window ending at t covers events in (t - w, t].
  Functions: count, sum, mean, min, max, stddev (sample), last (last non-null), count_distinct.

  Incremental runs and backfills read only the events the processing range needs (the range
  widened back by the longest window), so a window never misses history.
-#}
{% macro window_aggregates(relation, entities, timestamp, aggregations, windows, evaluate='event', timestamp_alias=none, where=none) %}
  {%- set accepted = ['count', 'sum', 'mean', 'min', 'max', 'stddev', 'last', 'count_distinct'] -%}
  {%- if entities is string -%}{%- set entities = [entities] -%}{%- endif -%}
  {%- if not windows -%}
    {{ exceptions.raise_compiler_error("window_aggregates in " ~ model.name ~ ": give at least one window, e.g. windows=['1d', '7d'].") }}
  {%- endif -%}

  {%- set all_windows = [] -%}
  {%- for w in windows + (aggregations | map(attribute='windows') | select | sum(start=[])) -%}
    {%- if (w | lower) not in all_windows -%}{%- do all_windows.append(w | lower) -%}{%- endif -%}
  {%- endfor -%}
  {%- set window_specs = [] -%}
  {%- set window_by_label = {} -%}
  {%- for w in all_windows -%}
    {%- set seconds = hindsight.parse_duration(w, "window '" ~ w ~ "' of window_aggregates in " ~ model.name) -%}
    {%- set spec = {'label': w, 'micros': seconds * 1000000, 'seconds': seconds, 'sql_name': 'hs_w_' ~ w} -%}
    {%- do window_specs.append(spec) -%}
    {%- do window_by_label.update({w: spec}) -%}
  {%- endfor -%}
  {%- set widest = window_specs | sort(attribute='micros') | last -%}

  {%- set columns = [] -%}
  {%- set features = [] -%}
  {%- for agg in aggregations -%}
    {%- set column = agg.get('column') -%}
    {%- if not column -%}
      {{ exceptions.raise_compiler_error("window_aggregates in " ~ model.name ~ ": every aggregation needs a 'column' ('*' counts events).") }}
    {%- endif -%}
    {%- if column != '*' and column not in columns -%}{%- do columns.append(column) -%}{%- endif -%}
    {%- set expression = 'hs_event' if column == '*' else 'hs_c' ~ (columns.index(column) + 1) -%}
    {%- set name = agg.get('name') or ('event' if column == '*' else column) -%}
    {%- for function in agg.get('functions', []) -%}
      {%- if function not in accepted -%}
        {{ exceptions.raise_compiler_error("window_aggregates in " ~ model.name ~ ": unknown function '" ~ function ~ "' for column " ~ column ~ "; accepted: " ~ accepted | join(', ') ~ ".") }}
      {%- endif -%}
      {%- if column == '*' and function != 'count' -%}
        {{ exceptions.raise_compiler_error("window_aggregates in " ~ model.name ~ ": column '*' only supports 'count'.") }}
      {%- endif -%}
      {%- for label in agg.get('windows') or windows -%}
        {%- set w = window_by_label[label | lower] -%}
        {%- do features.append({'name': name ~ '_' ~ function ~ '_' ~ w.label, 'function': function, 'expression': expression, 'window': w.sql_name}) -%}
      {%- endfor -%}
    {%- endfor -%}
  {%- endfor -%}

  {%- set grid = evaluate != 'event' -%}
  {%- if grid -%}
    {%- set step = hindsight.parse_duration(evaluate, "evaluate step of window_aggregates in " ~ model.name) * 1000000 -%}
    {%- set reach = ((widest.micros + step - 1) // step) | int -%}
  {%- endif -%}

  {%- set keys = [] -%}
  {%- for e in entities -%}{%- do keys.append(adapter.quote(e)) -%}{%- endfor -%}
  {%- set keys = keys | join(', ') -%}
  {%- set out_ts = adapter.quote(timestamp_alias or timestamp) -%}

with hs_events as (
    select {{ keys }}, {{ adapter.quote(timestamp) }} as hs_ts, 1 as hs_event
    {%- for c in columns %}, {{ adapter.quote(c) }} as hs_c{{ loop.index }}{% endfor %}
    from {{ relation }}
    where {{ hindsight.source_time_filter(adapter.quote(timestamp), history=widest.seconds ~ 's') }}
    {%- if where %} and ({{ where }}){% endif %}
),
{%- if grid %}
hs_buckets as (
    select distinct {{ keys }}, cast(ceil({{ hindsight.epoch_micros('hs_ts') }} / cast({{ step }} as double)) as bigint) as hs_bucket
    from hs_events
),
hs_island_starts as (
    select {{ keys }}, hs_bucket,
        case when lag(hs_bucket) over (partition by {{ keys }} order by hs_bucket) >= hs_bucket - {{ reach + 1 }} then 0 else 1 end as hs_new_island
    from hs_buckets
),
hs_islands as (
    select {{ keys }}, hs_bucket,
        sum(hs_new_island) over (partition by {{ keys }} order by hs_bucket rows between unbounded preceding and current row) as hs_island
    from hs_island_starts
),
hs_spans as (
    select {{ keys }}, min(hs_bucket) as hs_first, max(hs_bucket) + {{ reach }} as hs_last
    from hs_islands
    group by {{ keys }}, hs_island
),
hs_grid as (
    select {{ keys }},
        {{ hindsight.grid_points(
            hindsight.from_epoch_micros('hs_first * ' ~ step),
            hindsight.from_epoch_micros('least(hs_last, hs_cap) * ' ~ step),
            step) }} as hs_ts
    from hs_spans
    cross join (select max(hs_bucket) as hs_cap from hs_buckets) as hs_newest
),
hs_points as (
    select {{ keys }}, hs_ts, hs_event{% for c in columns %}, hs_c{{ loop.index }}{% endfor %}, 0 as hs_is_grid
    from hs_events
    union all
    select {{ keys }}, hs_ts, null{% for c in columns %}, null{% endfor %}, 1 as hs_is_grid
    from hs_grid
),
{%- else %}
hs_points as (
    select *, 0 as hs_is_grid from hs_events
),
{%- endif %}
hs_windowed as (
    select {{ keys }}, hs_ts, hs_is_grid,
        {%- for f in features %}
        {{ hindsight.aggregate_over_window(f.function, f.expression, f.window) }} as {{ adapter.quote(f.name) }},
        {%- endfor %}
        count(hs_event) over {{ widest.sql_name }} as hs_events_in_reach,
        lead(hs_ts) over (partition by {{ keys }} order by hs_ts) as hs_next_ts
    from hs_points
    window
    {%- for w in window_specs %}
        {{ w.sql_name }} as (partition by {{ keys }} order by hs_ts range between {{ hindsight.interval_micros(w.micros - 1) }} preceding and current row){{ ',' if not loop.last }}
    {%- endfor %}
)
select {{ keys }}, hs_ts as {{ out_ts }}
    {%- for f in features %}, {{ adapter.quote(f.name) }}{% endfor %}
from hs_windowed
{%- if grid %}
where hs_is_grid = 1 and hs_events_in_reach > 0
{%- else %}
{# Events at the same instant share every window; keep one row per (entity, time). #}
where hs_next_ts is null or hs_next_ts <> hs_ts
{%- endif %}
{% endmacro %}

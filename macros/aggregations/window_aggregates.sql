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

  Composable: the macro renders one SELECT statement (its own CTEs sit inside a subquery), so it
  can be a model's whole body, a CTE's body, or the final SELECT after the model's own WITH:
      with transactions as (select user_id, ts, amount from {{ source('raw', 'transactions') }})
      {{ hindsight.window_aggregates(relation='transactions', ...) }}

  Output: entities, the time column, then one column per (aggregation, function, window) named
  <name>_<function>_<window>, e.g. amount_sum_7d. A window ending at t covers events in (t - w, t].
  Functions (aggregation_functions.sql): count, sum, mean, min, max, stddev (sample), last (last
  non-null), count_distinct.

  How it is computed depends on the run (same results; see window_aggregates_by_*.sql):
    full refresh, evaluate='event'  window functions over the events
    full refresh, on a grid         window functions over step-sized tiles of pre-aggregated events
                                    (over grid points and events when a window is not a multiple of
                                    the step, or for count_distinct, which does not pre-aggregate)
    incremental run or backfill     only the rows this run writes: each joined to its entity's
                                    events in the longest window, then aggregated; the cost follows
                                    the new data, not the history
-#}
{% macro window_aggregates(relation, entities, timestamp, aggregations, windows, evaluate='event', timestamp_alias=none, where=none) %}
  {%- set spec = hindsight._window_spec(entities, timestamp, aggregations, windows, evaluate, timestamp_alias) -%}
  {%- set range = hindsight.processing_range() -%}
{#- A subquery, not a bare WITH: a leading `with` cannot follow the model's own CTE list. #}
select * from (
with hs_events as (
    select {{ spec.key_sql }}, {{ adapter.quote(timestamp) }} as hs_ts, {{ hindsight.epoch_micros(adapter.quote(timestamp)) }} as hs_us, 1 as hs_event
    {%- for c in spec.columns %}, {{ adapter.quote(c) }} as hs_c{{ loop.index }}{% endfor %}
    from {{ relation }}
    where {{ hindsight.source_time_filter(adapter.quote(timestamp), history=spec.widest.seconds ~ 's', range=range) }}
    {%- if where %} and ({{ where }}){% endif %}
),
{%- if spec.grid %}
{#- Grid points stop at the one covering the newest event of all, also when a backfill reads less. #}
hs_newest as (
    select {{ hindsight._bucket_of('max(' ~ hindsight.epoch_micros(adapter.quote(timestamp)) ~ ')', spec.step) }} as hs_newest
    from {{ relation }}
    {%- if where %} where {{ where }}{% endif %}
),
{%- endif %}
{%- if range.mode != 'full_refresh' %}
{{ hindsight._window_aggregates_by_join(spec, range) }}
{%- elif spec.grid and spec.tileable %}
{{ hindsight._window_aggregates_by_tiles(spec) }}
{%- else %}
{{ hindsight._window_aggregates_by_window(spec) }}
{%- endif %}
) as hs_window_aggregates
{% endmacro %}


{#- Parse and validate the arguments into one spec dict the formulations share. -#}
{% macro _window_spec(entities, timestamp, aggregations, windows, evaluate, timestamp_alias) %}
  {%- set functions = hindsight.aggregation_functions() -%}
  {%- set accepted = functions.keys() | list -%}
  {%- set where = "window_aggregates in " ~ model.name -%}
  {%- if entities is string -%}{%- set entities = [entities] -%}{%- endif -%}
  {%- if not windows -%}
    {{ exceptions.raise_compiler_error(where ~ ": give at least one window, e.g. windows=['1d', '7d'].") }}
  {%- endif -%}

  {%- set labels = [] -%}
  {%- for w in windows + (aggregations | map(attribute='windows') | select | sum(start=[])) -%}
    {%- if (w | lower) not in labels -%}{%- do labels.append(w | lower) -%}{%- endif -%}
  {%- endfor -%}
  {%- set window_specs = [] -%}
  {%- set by_label = {} -%}
  {%- for w in labels -%}
    {%- set seconds = hindsight.parse_duration(w, "window '" ~ w ~ "' of " ~ where) -%}
    {%- set spec = {'label': w, 'micros': seconds * 1000000, 'seconds': seconds, 'sql_name': 'hs_w_' ~ w} -%}
    {%- do window_specs.append(spec) -%}
    {%- do by_label.update({w: spec}) -%}
  {%- endfor -%}

  {%- set columns = [] -%}
  {%- set features = [] -%}
  {%- for agg in aggregations -%}
    {%- set column = agg.get('column') -%}
    {%- if not column -%}
      {{ exceptions.raise_compiler_error(where ~ ": every aggregation needs a 'column' ('*' counts events).") }}
    {%- endif -%}
    {%- if column != '*' and column not in columns -%}{%- do columns.append(column) -%}{%- endif -%}
    {%- set slot = none if column == '*' else columns.index(column) + 1 -%}
    {%- set name = agg.get('name') or ('event' if column == '*' else column) -%}
    {%- for function in agg.get('functions', []) -%}
      {%- if function not in accepted -%}
        {{ exceptions.raise_compiler_error(where ~ ": unknown function '" ~ function ~ "' for column " ~ column ~ "; accepted: " ~ accepted | join(', ') ~ ".") }}
      {%- endif -%}
      {%- if column == '*' and function != 'count' -%}
        {{ exceptions.raise_compiler_error(where ~ ": column '*' only supports 'count'.") }}
      {%- endif -%}
      {%- for label in agg.get('windows') or windows -%}
        {%- do features.append({
            'name': name ~ '_' ~ function ~ '_' ~ (label | lower),
            'function': function,
            'slot': slot,
            'expression': 'hs_event' if slot is none else 'hs_c' ~ slot,
            'window': by_label[label | lower],
        }) -%}
      {%- endfor -%}
    {%- endfor -%}
  {%- endfor -%}

  {%- set grid = evaluate != 'event' -%}
  {%- set step = (hindsight.parse_duration(evaluate, "evaluate step of " ~ where) * 1000000) if grid else none -%}
  {%- set widest = window_specs | sort(attribute='micros') | last -%}
  {#- Tiles are exact when every window is a whole number of steps, for functions with a tile form. -#}
  {%- set tileable_functions = [] -%}
  {%- for name, entry in functions.items() if entry.tile -%}{%- do tileable_functions.append(name) -%}{%- endfor -%}
  {%- set untileable = features | rejectattr('function', 'in', tileable_functions) | list -%}
  {%- set remainders = [] -%}
  {%- for w in window_specs if grid -%}{%- do remainders.append(w.micros % step) -%}{%- endfor -%}

  {%- set quoted = [] -%}
  {%- for e in entities -%}{%- do quoted.append(adapter.quote(e)) -%}{%- endfor -%}
  {{ return({
      'entities': entities,
      'key_list': quoted,
      'key_sql': quoted | join(', '),
      'out_ts': adapter.quote(timestamp_alias or timestamp),
      'windows': window_specs,
      'widest': widest,
      'features': features,
      'columns': columns,
      'grid': grid,
      'step': step,
      'reach': ((widest.micros + step - 1) // step) | int if grid else none,
      'tileable': grid and not untileable and (remainders | sum) == 0,
  }) }}
{% endmacro %}


{#-
  Grid points as bucket numbers (t = bucket * step): for each entity, every bucket from its first
  event's up to `reach` steps after its last, merged into islands so gaps of inactivity add no
  rows, and never past the bucket of the newest event (hs_newest). Reads `source_cte`.
-#}
{% macro _grid_buckets(spec, source_cte, bucket_expression) %}
hs_active as (
    select distinct {{ spec.key_sql }}, {{ bucket_expression }} as hs_bucket
    from {{ source_cte }}
),
hs_island_starts as (
    select {{ spec.key_sql }}, hs_bucket,
        case when lag(hs_bucket) over (partition by {{ spec.key_sql }} order by hs_bucket) >= hs_bucket - {{ spec.reach + 1 }} then 0 else 1 end as hs_new_island
    from hs_active
),
hs_islands as (
    select {{ spec.key_sql }}, hs_bucket,
        sum(hs_new_island) over (partition by {{ spec.key_sql }} order by hs_bucket rows between unbounded preceding and current row) as hs_island
    from hs_island_starts
),
hs_spans as (
    select {{ spec.key_sql }}, min(hs_bucket) as hs_first, max(hs_bucket) + {{ spec.reach }} as hs_last
    from hs_islands
    group by {{ spec.key_sql }}, hs_island
),
hs_grid as (
    select {{ spec.key_sql }}, {{ hindsight.integer_series('hs_first', 'least(hs_last, hs_newest)') }} as hs_bucket
    from hs_spans
    cross join hs_newest
),
{%- endmacro %}


{#- The bucket (grid point index) an instant falls in: the first grid point at or after it. -#}
{% macro _bucket_of(us_expression, step) -%}
  cast(ceil({{ us_expression }} / cast({{ step }} as double)) as {{ dbt.type_bigint() }})
{%- endmacro %}

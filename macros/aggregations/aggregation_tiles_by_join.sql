{#-
  The tile rows of an aggregation view, as aggregation_tiles computes them (same columns, same
  values), for engines where a window function over many small partitions is slow: Sail (DataFusion)
  pays a fixed cost per window partition, and aggregation_tiles partitions by (entity, interval),
  which is about one partition per event when intervals are short (5-minute tiles: 1M events took
  ~9 s per window pass on Sail against ~2 s for the same window over one partition per entity).
  Chosen by spark_capabilities().tile_prefix == 'join' (feature_view_spark.sql).

  How: the distinct event times of each (entity, interval) are counted first. Intervals with at most
  `limit` distinct times (nearly all of them on real data) get their prefix aggregates from an
  equi-join of each event time to the interval's events at or before it, then one GROUP BY: hash
  joins and hash aggregates, no window. The join holds at most limit * events rows, so an entity
  with a burst of events in one interval cannot blow it up: intervals with more times keep the
  window formulation, whose partitions are then at least `limit` rows each.
  The rules of aggregation_tiles hold on both paths: m2 from var_samp over the raw events of the
  prefix (never sum(x^2) - sum(x)^2 / n), `last` the newest non-null value with ties at one event
  time broken by the largest value (the join takes each time's max first). Events with a NULL
  entity key take the window path, so they are kept (for validate_feature_view_rows to refuse) and
  the joins stay plain equi-joins: Sail does not hash on a null-safe `<=>` key beside `=` keys and
  joined whole days of all merchants (10x slower).

    limit  the most distinct event times per interval that take the join; the project variable
           hindsight_tile_join_limit overrides the default 32 (0 sends every interval to the window)
-#}
{% macro aggregation_tiles_by_join(relation, cfg, range, types) %}
  {%- set names = hindsight.tile_columns() -%}
  {%- set limit = var('hindsight_tile_join_limit', 32) | int -%}
  {%- set keys = [] -%}
  {%- for e in cfg.entities -%}{%- do keys.append(adapter.quote(e)) -%}{%- endfor -%}
  {%- set key_sql = keys | join(', ') -%}
  {%- set ts = adapter.quote(cfg.timestamp_field) -%}
  {%- set inputs = hindsight.tile_inputs(cfg) -%}
  {%- set slots = {} -%}
  {%- for input in inputs -%}{%- do slots.update({input.column: loop.index}) -%}{%- endfor -%}
  {%- set sum_slots, m2_slots, last_slots = [], [], [] -%}
  {%- for input in inputs -%}
    {%- if 'sum' in input.functions or 'mean' in input.functions or 'stddev' in input.functions -%}{%- do sum_slots.append(loop.index) -%}{%- endif -%}
    {%- if 'stddev' in input.functions -%}{%- do m2_slots.append(loop.index) -%}{%- endif -%}
    {%- if 'last' in input.functions -%}{%- do last_slots.append(loop.index) -%}{%- endif -%}
  {%- endfor -%}
  {%- set group_keys = key_sql ~ ', hs_tile_us, hs_us, hs_ts' -%}
  {%- set null_keys, event_columns = [], keys + ['hs_ts', 'hs_us', 'hs_tile_us'] -%}
  {%- for k in keys -%}{%- do null_keys.append(k ~ ' is null') -%}{%- endfor -%}
  {%- for input in inputs -%}{%- do event_columns.append('hs_c' ~ loop.index) -%}{%- endfor -%}
  {%- set window = 'hs_tile_prefix' -%}
select * from (
with hs_events as (
{{ hindsight.tile_events(relation, cfg, range) }}
),
{#- One row per (entity, event time): each time's `last` candidate, and how many times its interval has. #}
hs_times as (
    select {{ group_keys }}
        {%- for i in last_slots %}, max(hs_c{{ i }}) as hs_g_last{{ i }}{% endfor %}
    from hs_events
    where not ({{ null_keys | join(' or ') }})
    group by {{ group_keys }}
),
hs_interval_sizes as (
    select {{ key_sql }}, hs_tile_us, count(*) as hs_times_in_tile
    from hs_times
    group by {{ key_sql }}, hs_tile_us
),
hs_sized_times as (
    select hs_times.*, hs_interval_sizes.hs_times_in_tile
    from hs_times
    join hs_interval_sizes
        on {% for k in keys %}hs_times.{{ k }} = hs_interval_sizes.{{ k }} and {% endfor %}hs_times.hs_tile_us = hs_interval_sizes.hs_tile_us
),
hs_sized_events as (
    select hs_events.*, hs_sized_times.hs_times_in_tile
        {%- for i in last_slots %}, hs_sized_times.hs_g_last{{ i }}{% endfor %}
    from hs_events
    join hs_sized_times
        on {% for k in keys %}hs_events.{{ k }} = hs_sized_times.{{ k }} and {% endfor %}hs_events.hs_tile_us = hs_sized_times.hs_tile_us and hs_events.hs_us = hs_sized_times.hs_us
),
{#- Small intervals: each event time joined to its interval's events at or before it. #}
hs_joined as (
    select {% for k in keys %}hs_target.{{ k }}, {% endfor %}hs_target.hs_tile_us, hs_target.hs_us, hs_target.hs_ts,
        count(*) as hs_p_events
        {%- for input in inputs %}
        {%- set i = loop.index %}, count(hs_prior.hs_c{{ i }}) as hs_p_n{{ i }}
        {%- if i in sum_slots %}, sum(hs_prior.hs_c{{ i }}) as hs_p_sum{{ i }}{% endif %}
        {%- if i in m2_slots %}, var_samp(cast(hs_prior.hs_c{{ i }} as double)) as hs_p_v{{ i }}{% endif %}
        {%- if 'min' in input.functions %}, min(hs_prior.hs_c{{ i }}) as hs_p_min{{ i }}{% endif %}
        {%- if 'max' in input.functions %}, max(hs_prior.hs_c{{ i }}) as hs_p_max{{ i }}{% endif %}
        {%- if i in last_slots %}
        , max_by(hs_prior.hs_g_last{{ i }}, case when hs_prior.hs_g_last{{ i }} is not null then hs_prior.hs_us end) as hs_p_last{{ i }}
        , max(case when hs_prior.hs_g_last{{ i }} is not null then hs_prior.hs_ts end) as hs_p_last_at{{ i }}
        {%- endif %}
        {%- endfor %}
    from (select * from hs_sized_times where hs_times_in_tile <= {{ limit }}) as hs_target
    join (select * from hs_sized_events where hs_times_in_tile <= {{ limit }}) as hs_prior
        on {% for k in keys %}hs_prior.{{ k }} = hs_target.{{ k }} and {% endfor %}hs_prior.hs_tile_us = hs_target.hs_tile_us and hs_prior.hs_us <= hs_target.hs_us
    group by {% for k in keys %}hs_target.{{ k }}, {% endfor %}hs_target.hs_tile_us, hs_target.hs_us, hs_target.hs_ts
),
{#- Large intervals: aggregation_tiles' window formulation over their events only. #}
hs_large as (
    select *
        {%- for i in m2_slots %},
        var_samp(cast(hs_c{{ i }} as double)) over (partition by {{ key_sql }}, hs_tile_us order by hs_us range between unbounded preceding and current row) as hs_v{{ i }}
        {%- endfor %}
    from (
        select {{ event_columns | join(', ') }} from hs_sized_events where hs_times_in_tile > {{ limit }}
        union all
        select {{ event_columns | join(', ') }} from hs_events where {{ null_keys | join(' or ') }}
    ) as hs_large_events
),
hs_large_groups as (
    select {{ group_keys }}, count(*) as hs_g_events
        {%- for input in inputs %}
        {%- set i = loop.index %}, count(hs_c{{ i }}) as hs_g_n{{ i }}
        {%- if i in sum_slots %}, sum(hs_c{{ i }}) as hs_g_sum{{ i }}{% endif %}
        {%- if i in m2_slots %}, max(hs_v{{ i }}) as hs_g_v{{ i }}{% endif %}
        {%- if 'min' in input.functions %}, min(hs_c{{ i }}) as hs_g_min{{ i }}{% endif %}
        {%- if 'max' in input.functions %}, max(hs_c{{ i }}) as hs_g_max{{ i }}{% endif %}
        {%- if i in last_slots %}, max(hs_c{{ i }}) as hs_g_last{{ i }}{% endif %}
        {%- endfor %}
    from hs_large
    group by {{ group_keys }}
),
hs_windowed as (
    select {{ group_keys }},
        {{ hindsight.aggregate_over_window('sum', 'hs_g_events', window) }} as hs_p_events
        {%- for input in inputs %}
        {%- set i = loop.index %},
        {{ hindsight.aggregate_over_window('sum', 'hs_g_n' ~ i, window) }} as hs_p_n{{ i }}
        {%- if i in sum_slots %}, {{ hindsight.aggregate_over_window('sum', 'hs_g_sum' ~ i, window) }} as hs_p_sum{{ i }}{% endif %}
        {%- if i in m2_slots %}, hs_g_v{{ i }} as hs_p_v{{ i }}{% endif %}
        {%- if 'min' in input.functions %}, {{ hindsight.aggregate_over_window('min', 'hs_g_min' ~ i, window) }} as hs_p_min{{ i }}{% endif %}
        {%- if 'max' in input.functions %}, {{ hindsight.aggregate_over_window('max', 'hs_g_max' ~ i, window) }} as hs_p_max{{ i }}{% endif %}
        {%- if i in last_slots %}
        , {{ hindsight.aggregate_over_window('last', 'hs_g_last' ~ i, window) }} as hs_p_last{{ i }}
        , {{ hindsight.aggregate_over_window('last', 'case when hs_g_last' ~ i ~ ' is not null then hs_ts end', window) }} as hs_p_last_at{{ i }}
        {%- endif %}
        {%- endfor %}
    from hs_large_groups
    window {{ window }} as (partition by {{ key_sql }}, hs_tile_us order by hs_us rows between unbounded preceding and current row)
),
hs_prefixes as (
    select * from hs_joined
    union all
    select * from hs_windowed
)
select {{ key_sql }}, hs_ts as {{ ts }}, {{ hindsight.from_epoch_micros('hs_tile_us') }} as {{ adapter.quote(names.tile_start) }}
    {%- for input in cfg.aggregation.inputs %}
    {%- if input.column == names.star %},
    cast(hs_p_events as {{ dbt.type_bigint() }}) as {{ adapter.quote(names.event_count) }}
    {%- else %}
    {%- set i = slots[input.column] %}
    {%- for column in input.parts %}
    {%- set part = column[(input.column | length) + 2:] %},
    {% if part == 'n' -%}
    cast(hs_p_n{{ i }} as {{ dbt.type_bigint() }})
    {%- elif part == 'sum' -%}
    cast(hs_p_sum{{ i }} as {{ dbt.type_bigint() if hindsight._is_integer_type(types[input.column]) else 'double' }})
    {%- elif part == 'm2' -%}
    cast(case when hs_p_n{{ i }} = 1 then 0 else hs_p_v{{ i }} * (hs_p_n{{ i }} - 1) end as double)
    {%- elif part in ['min', 'max', 'last', 'last_at'] -%}
    hs_p_{{ part }}{{ i }}
    {%- else -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": no SQL for tile part " ~ part) }}
    {%- endif %} as {{ adapter.quote(column) }}
    {%- endfor %}
    {%- endif %}
    {%- endfor %}
from hs_prefixes
) as hs_aggregation_tiles
{% endmacro %}

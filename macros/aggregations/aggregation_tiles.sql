{#-
  The tile rows of an aggregation view (offline_store/tiles.py): one SELECT turning the events in
  `relation` (the model's SQL) whose event time lies in this run's processing range into one row
  per entity and distinct event time e, holding the partial aggregates of the entity's events in
  [floor(e, i), e] (i = aggregation_interval, intervals aligned to the Unix epoch, UTC).

    relation  the events
    cfg       feature_view_config() of an aggregation view
    range     processing_range(); on an aggregation view it starts and ends on interval bounds,
              so every tile it writes is computed from all of its interval's events
    types     the events' column types, from validate_aggregation_events

  How: the events of each (entity, e) are grouped first, then running window aggregates over the
  groups of each (entity, interval), ordered by e, give the prefix aggregates. Two parts need care:
    m2    the sum of squared deviations is var_samp over the raw events of the prefix times (n - 1):
          both engines compute var_samp stably (never sum(x^2) - sum(x)^2 / n, which cancels)
    last  the newest non-null value; events sharing one event time break the tie by the largest
          value, so every build of the same events gives the same tile
  Events with a NULL event time are left out (validate_aggregation_events warned about them);
  NULL entity keys are kept, for validate_feature_view_rows to refuse.
-#}
{% macro aggregation_tiles(relation, cfg, range, types) %}
  {%- set names = hindsight.tile_columns() -%}
  {%- set keys = [] -%}
  {%- for e in cfg.entities -%}{%- do keys.append(adapter.quote(e)) -%}{%- endfor -%}
  {%- set key_sql = keys | join(', ') -%}
  {%- set ts = adapter.quote(cfg.timestamp_field) -%}
  {%- set inputs = hindsight.tile_inputs(cfg) -%}
  {%- set slots = {} -%}
  {%- for input in inputs -%}{%- do slots.update({input.column: loop.index}) -%}{%- endfor -%}
  {%- set m2_slots = [] -%}
  {%- for input in inputs -%}{%- if 'stddev' in input.functions -%}{%- do m2_slots.append(loop.index) -%}{%- endif -%}{%- endfor -%}
  {%- set window = 'hs_tile_prefix' -%}
select * from (
with hs_events as (
{{ hindsight.tile_events(relation, cfg, range) }}
),
{%- if m2_slots %}
{#- Over raw events with a RANGE frame, so every event of one event time sees the same prefix. #}
hs_variances as (
    select *
        {%- for slot in m2_slots %},
        var_samp(cast(hs_c{{ slot }} as double)) over (partition by {{ key_sql }}, hs_tile_us order by hs_us range between unbounded preceding and current row) as hs_v{{ slot }}
        {%- endfor %}
    from hs_events
),
{%- endif %}
hs_groups as (
    select {{ key_sql }}, hs_tile_us, hs_us, hs_ts, count(*) as hs_g_events
        {%- for input in inputs %}
        {%- set c = 'hs_c' ~ loop.index %}
        , count({{ c }}) as hs_g_n{{ loop.index }}
        {%- if 'sum' in input.functions or 'mean' in input.functions or 'stddev' in input.functions %}, sum({{ c }}) as hs_g_sum{{ loop.index }}{% endif %}
        {%- if 'stddev' in input.functions %}, max(hs_v{{ loop.index }}) as hs_g_v{{ loop.index }}{% endif %}
        {%- if 'min' in input.functions %}, min({{ c }}) as hs_g_min{{ loop.index }}{% endif %}
        {%- if 'max' in input.functions %}, max({{ c }}) as hs_g_max{{ loop.index }}{% endif %}
        {%- if 'last' in input.functions %}, max({{ c }}) as hs_g_last{{ loop.index }}{% endif %}
        {%- endfor %}
    from {{ 'hs_variances' if m2_slots else 'hs_events' }}
    group by {{ key_sql }}, hs_tile_us, hs_us, hs_ts
)
select {{ key_sql }}, hs_ts as {{ ts }}, {{ hindsight.from_epoch_micros('hs_tile_us') }} as {{ adapter.quote(names.tile_start) }}
    {%- for input in cfg.aggregation.inputs %}
    {%- if input.column == names.star %},
    cast({{ hindsight.aggregate_over_window('sum', 'hs_g_events', window) }} as {{ dbt.type_bigint() }}) as {{ adapter.quote(names.event_count) }}
    {%- else %}
    {%- set i = slots[input.column] %}
    {%- set n = hindsight.aggregate_over_window('sum', 'hs_g_n' ~ i, window) %}
    {%- for column in input.parts %}
    {%- set part = column[(input.column | length) + 2:] %},
    {% if part == 'n' -%}
    cast({{ n }} as {{ dbt.type_bigint() }})
    {%- elif part == 'sum' -%}
    cast({{ hindsight.aggregate_over_window('sum', 'hs_g_sum' ~ i, window) }} as {{ dbt.type_bigint() if hindsight._is_integer_type(types[input.column]) else 'double' }})
    {%- elif part == 'm2' -%}
    {#- n = 1: no deviation (var_samp is NULL there); n = 0: NULL, like the sum. #}
    cast(case when {{ n }} = 1 then 0 else hs_g_v{{ i }} * ({{ n }} - 1) end as double)
    {%- elif part == 'min' -%}
    {{ hindsight.aggregate_over_window('min', 'hs_g_min' ~ i, window) }}
    {%- elif part == 'max' -%}
    {{ hindsight.aggregate_over_window('max', 'hs_g_max' ~ i, window) }}
    {%- elif part == 'last' -%}
    {{ hindsight.aggregate_over_window('last', 'hs_g_last' ~ i, window) }}
    {%- elif part == 'last_at' -%}
    {{ hindsight.aggregate_over_window('last', 'case when hs_g_last' ~ i ~ ' is not null then hs_ts end', window) }}
    {%- else -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": no SQL for tile part " ~ part) }}
    {%- endif %} as {{ adapter.quote(column) }}
    {%- endfor %}
    {%- endif %}
    {%- endfor %}
from hs_groups
window {{ window }} as (partition by {{ key_sql }}, hs_tile_us order by hs_us rows between unbounded preceding and current row)
) as hs_aggregation_tiles
{% endmacro %}

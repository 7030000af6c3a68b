{#-
  window_aggregates, full refresh on a grid: events are first pre-aggregated into step-sized tiles
  per entity (tile b holds events in ((b - 1) * step, b * step]), then each window is a sum, min,
  max or last over the tiles it covers. Exact when every window is a whole number of steps (the
  spec checks) and far cheaper than windowing every event. Continues after hs_events.
-#}
{% macro _window_aggregates_by_tiles(spec) %}
  {%- set functions_of = {} -%}
  {%- for f in spec.features if f.slot is not none -%}
    {%- do functions_of.update({f.slot: functions_of.get(f.slot, []) + [f.function]}) -%}
  {%- endfor %}
hs_tiles as (
    select {{ spec.key_sql }}, {{ hindsight._bucket_of('hs_us', spec.step) }} as hs_bucket,
        count(hs_event) as hs_n
        {%- for slot, functions in functions_of.items() %}
        , count(hs_c{{ slot }}) as hs_n{{ slot }}, sum(hs_c{{ slot }}) as hs_s{{ slot }}
        , min(hs_c{{ slot }}) as hs_lo{{ slot }}, max(hs_c{{ slot }}) as hs_hi{{ slot }}
        {%- if 'last' in functions %}
        , max_by(hs_c{{ slot }}, case when hs_c{{ slot }} is not null then hs_us end) as hs_last{{ slot }}
        {%- endif %}
        {%- endfor %}
    from hs_events
    group by {{ spec.key_sql }}, {{ hindsight._bucket_of('hs_us', spec.step) }}
),
{{ hindsight._grid_buckets(spec, 'hs_tiles', 'hs_bucket') }}
hs_points as (
    select {% for k in spec.key_list %}hs_grid.{{ k }}, {% endfor %}hs_grid.hs_bucket, hs_n
        {%- for slot, functions in functions_of.items() %}, hs_n{{ slot }}, hs_s{{ slot }}, hs_lo{{ slot }}, hs_hi{{ slot }}{% if 'last' in functions %}, hs_last{{ slot }}{% endif %}{% endfor %}
    from hs_grid
    left join hs_tiles
        on {% for k in spec.key_list %}hs_tiles.{{ k }} = hs_grid.{{ k }} and {% endfor %}hs_tiles.hs_bucket = hs_grid.hs_bucket
),
hs_windowed as (
    select {{ spec.key_sql }}, hs_bucket,
        {%- for f in spec.features %}
        {{ hindsight._tile_aggregate(f) }} as {{ adapter.quote(f.name) }},
        {%- endfor %}
        sum(hs_n) over {{ spec.widest.sql_name }} as hs_events_in_reach
    from hs_points
    window
    {%- for w in spec.windows %}
        {{ w.sql_name }} as (partition by {{ spec.key_sql }} order by hs_bucket range between {{ (w.micros // spec.step) | int - 1 }} preceding and current row){{ ',' if not loop.last }}
    {%- endfor %}
)
select {{ spec.key_sql }}, {{ hindsight.from_epoch_micros('hs_bucket * ' ~ spec.step) }} as {{ spec.out_ts }}
    {%- for f in spec.features %}, {{ adapter.quote(f.name) }}{% endfor %}
from hs_windowed
where hs_events_in_reach > 0
{%- endmacro %}


{#- One feature over the tiles of its window; counts are 0, not NULL, over tiles with no events. -#}
{% macro _tile_aggregate(f) -%}
  {%- set w = f.window.sql_name -%}
  {%- set n = 'hs_n' if f.slot is none else 'hs_n' ~ f.slot -%}
  {%- set tile = (hindsight.aggregation_functions().get(f.function) or {}).get('tile') -%}
  {%- if not tile -%}
    {{ exceptions.raise_compiler_error("window_aggregates: " ~ f.function ~ " cannot be computed from tiles") }}
  {%- endif -%}
  {%- set last = hindsight.aggregate_over_window('last', 'hs_last' ~ f.slot, w) if '{last}' in tile else '' -%}
  {{ tile | replace('{n}', n) | replace('{s}', 'hs_s' ~ f.slot) | replace('{lo}', 'hs_lo' ~ f.slot)
          | replace('{hi}', 'hs_hi' ~ f.slot) | replace('{last}', last) | replace('{w}', w) }}
{%- endmacro %}

{#-
  window_aggregates, full refresh, evaluated at each event (or, for grids that cannot be tiled, at
  grid points unioned with the events): one window function per feature, framed on the integer
  epoch-microsecond order key. Continues the CTE list window_aggregates opened with hs_events.
-#}
{% macro _window_aggregates_by_window(spec) %}
{%- if spec.grid %}
{{ hindsight._grid_buckets(spec, 'hs_events', hindsight._bucket_of('hs_us', spec.step)) }}
hs_points as (
    select {{ spec.key_sql }}, hs_us, hs_event{% for c in spec.columns %}, hs_c{{ loop.index }}{% endfor %}, 0 as hs_is_grid
    from hs_events
    union all
    select {{ spec.key_sql }}, hs_bucket * {{ spec.step }}, null{% for c in spec.columns %}, null{% endfor %}, 1 as hs_is_grid
    from hs_grid
),
{%- else %}
hs_points as (
    select *, 0 as hs_is_grid from hs_events
),
{%- endif %}
hs_windowed as (
    select {{ spec.key_sql }}, hs_us, hs_is_grid,
        {%- if not spec.grid %} hs_ts,{% endif %}
        {%- for f in spec.features %}
        {{ hindsight.aggregate_over_window(f.function, f.expression, f.window.sql_name) }} as {{ adapter.quote(f.name) }},
        {%- endfor %}
        count(hs_event) over {{ spec.widest.sql_name }} as hs_events_in_reach,
        lead(hs_us) over (partition by {{ spec.key_sql }} order by hs_us) as hs_next_us
    from hs_points
    window
    {%- for w in spec.windows %}
        {{ w.sql_name }} as (partition by {{ spec.key_sql }} order by hs_us range between {{ w.micros - 1 }} preceding and current row){{ ',' if not loop.last }}
    {%- endfor %}
)
select {{ spec.key_sql }}, {{ hindsight.from_epoch_micros('hs_us') if spec.grid else 'hs_ts' }} as {{ spec.out_ts }}
    {%- for f in spec.features %}, {{ adapter.quote(f.name) }}{% endfor %}
from hs_windowed
{%- if spec.grid %}
where hs_is_grid = 1 and hs_events_in_reach > 0
{%- else %}
{# Events at the same instant share every window; keep one row per (entity, time). #}
where hs_next_us is null or hs_next_us <> hs_us
{%- endif %}
{%- endmacro %}

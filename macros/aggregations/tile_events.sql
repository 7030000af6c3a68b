{#-
  The events an aggregation view's tiles are built from (aggregation_tiles and
  aggregation_tiles_by_join both start here): each event in this run's processing range with its
  entity keys, its time (hs_ts), its time in microseconds since the epoch (hs_us), the start of its
  interval in microseconds (hs_tile_us, intervals aligned to the epoch, floor also before 1970) and
  each aggregated column as hs_c<slot>, slots numbered from 1 in the order of
  tile_inputs(cfg). Events with a NULL event time are left out (validate_aggregation_events warned
  about them).
-#}
{% macro tile_events(relation, cfg, range) %}
  {%- set keys = [] -%}
  {%- for e in cfg.entities -%}{%- do keys.append(adapter.quote(e)) -%}{%- endfor -%}
  {%- set ts = adapter.quote(cfg.timestamp_field) -%}
  {%- set interval_us = cfg.aggregation.interval_seconds * 1000000 -%}
    select {{ keys | join(', ') }}, {{ ts }} as hs_ts, hs_us, hs_us - (((hs_us % {{ interval_us }}) + {{ interval_us }}) % {{ interval_us }}) as hs_tile_us
        {%- for input in hindsight.tile_inputs(cfg) %}, {{ adapter.quote(input.column) }} as hs_c{{ loop.index }}{% endfor %}
    from (
        {#- Spark's unix_micros is defined on timestamp: a timestamp_ntz or date column is cast (UTC session: the instant is kept). #}
        select *, {{ hindsight.epoch_micros('cast(' ~ ts ~ ' as ' ~ dbt.type_timestamp() ~ ')') }} as hs_us
        from {{ relation }}
        where {{ ts }} is not null and {{ hindsight.range_predicate(ts, range) }}
    ) as hs_timed
{%- endmacro %}

{#- The aggregated columns of an aggregation view (every input but count(*)), in slot order. -#}
{% macro tile_inputs(cfg) %}
  {{ return(cfg.aggregation.inputs | rejectattr('column', 'equalto', hindsight.tile_columns().star) | list) }}
{% endmacro %}

{#-
  window_aggregates for an incremental run or a backfill: only the rows this run writes (events, or
  grid points, in the processing range) are computed, each joined to its entity's events in
  (t - longest window, t] and aggregated with one conditional aggregate per feature. The cost
  follows the new data instead of the history. Continues after hs_events.
-#}
{% macro _window_aggregates_by_join(spec, range) %}
  {%- set bounds = [] -%}
  {%- if range.start is not none -%}{%- do bounds.append('hs_us >= ' ~ hindsight._epoch_micros_of(range.start)) -%}{%- endif -%}
  {%- if range.end is not none -%}{%- do bounds.append('hs_us < ' ~ hindsight._epoch_micros_of(range.end)) -%}{%- endif -%}
  {%- set in_range = bounds | join(' and ') if bounds else '1 = 1' -%}
{%- if spec.grid %}
{{ hindsight._grid_buckets(spec, 'hs_events', hindsight._bucket_of('hs_us', spec.step)) }}
hs_targets as (
    select {{ spec.key_sql }}, hs_us
    from (select {{ spec.key_sql }}, hs_bucket * {{ spec.step }} as hs_us from hs_grid) as hs_grid_points
    where {{ in_range }}
),
{%- else %}
hs_targets as (
    select distinct {{ spec.key_sql }}, hs_us, hs_ts
    from hs_events
    where {{ in_range }}
),
{%- endif %}
hs_pairs as (
    select {% for k in spec.key_list %}hs_targets.{{ k }}, {% endfor %}hs_targets.hs_us,
        {%- if not spec.grid %} hs_targets.hs_ts,{% endif %}
        hs_events.hs_event, hs_events.hs_us as hs_event_us, hs_targets.hs_us - hs_events.hs_us as hs_age
        {%- for c in spec.columns %}, hs_events.hs_c{{ loop.index }}{% endfor %}
    from hs_targets
    join hs_events
        {#- NULL-safe, as the full refresh's PARTITION BY groups NULL keys: a NULL-key row must reach
            validation on every run, not vanish from an incremental one. #}
        on {% for k in spec.key_list %}hs_events.{{ k }} is not distinct from hs_targets.{{ k }} and {% endfor %}hs_events.hs_us <= hs_targets.hs_us
        and hs_events.hs_us > hs_targets.hs_us - {{ spec.widest.micros }}
)
select {{ spec.key_sql }}, {{ hindsight.from_epoch_micros('hs_us') if spec.grid else 'hs_ts' }} as {{ spec.out_ts }}
    {%- for f in spec.features %},
    {{ hindsight._aggregate_in_window(f.function, f.expression, 'hs_age < ' ~ f.window.micros) }} as {{ adapter.quote(f.name) }}
    {%- endfor %}
from hs_pairs
group by {{ spec.key_sql }}, hs_us{% if not spec.grid %}, hs_ts{% endif %}
{%- endmacro %}


{#- One feature as a conditional aggregate over the joined events; the same SQL on every engine. -#}
{% macro _aggregate_in_window(function, column, condition) -%}
  {%- set value = 'case when ' ~ condition ~ ' then ' ~ column ~ ' end' -%}
  {%- set entry = hindsight.aggregation_functions().get(function) -%}
  {%- if function == 'last' -%} max_by({{ column }}, case when {{ condition }} and {{ column }} is not null then hs_event_us end)
  {%- elif entry and entry.sql -%} {{ entry.sql | replace('{v}', value) }}
  {%- else -%} {{ exceptions.raise_compiler_error("window_aggregates: unknown function " ~ function) }}
  {%- endif -%}
{%- endmacro %}


{#- Microseconds since the Unix epoch of a naive UTC datetime, as an integer literal. -#}
{% macro _epoch_micros_of(moment) -%}
  {%- set delta = moment - modules.datetime.datetime(1970, 1, 1) -%}
  {{- delta.days * 86400000000 + delta.seconds * 1000000 + delta.microseconds -}}
{%- endmacro %}

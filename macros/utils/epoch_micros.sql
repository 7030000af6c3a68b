{#- Microseconds since the Unix epoch of a timestamp, and back (UTC). -#}
{% macro epoch_micros(ts) %}
  {{- return(adapter.dispatch('epoch_micros', 'hindsight')(ts)) -}}
{% endmacro %}

{% macro default__epoch_micros(ts) -%}
  {{ hindsight.unsupported_adapter('epoch_micros') }}
{%- endmacro %}

{% macro spark__epoch_micros(ts) -%}
  unix_micros({{ ts }})
{%- endmacro %}

{% macro duckdb__epoch_micros(ts) -%}
  epoch_us({{ ts }})
{%- endmacro %}


{% macro from_epoch_micros(micros) %}
  {{- return(adapter.dispatch('from_epoch_micros', 'hindsight')(micros)) -}}
{% endmacro %}

{% macro default__from_epoch_micros(micros) -%}
  {{ hindsight.unsupported_adapter('from_epoch_micros') }}
{%- endmacro %}

{% macro spark__from_epoch_micros(micros) -%}
  timestamp_micros({{ micros }})
{%- endmacro %}

{#- make_timestamp gives a naive TIMESTAMP; the session is UTC, so the cast keeps the instant. -#}
{% macro duckdb__from_epoch_micros(micros) -%}
  cast(make_timestamp({{ micros }}) as timestamptz)
{%- endmacro %}

{#-
  Seconds in a compact duration: '30d', '12h', '90m', '45s', '2w', '1d12h' (ASCII digits, then one of
  w d h m s, repeated; case and surrounding spaces ignored). hindsight/core/durations.py is the
  Python side; tests/cases/durations.yml holds the cases both must agree on
  (tests/unit/test_conformance.py, tests/integration/test_conformance_jinja.py).
  `what` names the config key in the error, e.g. "ttl of feature view user_profile".
-#}
{% macro parse_duration(text, what='duration') %}
  {%- set seconds = hindsight._duration_seconds(text) -%}
  {%- if seconds is none -%}
    {{ exceptions.raise_compiler_error(
        "Cannot parse the " ~ what ~ ": " ~ (text | string) ~ ". Expected a number and a unit "
        ~ "(w, d, h, m, s), like '30d', '12h' or '1d12h'.") }}
  {%- endif -%}
  {{ return(seconds) }}
{% endmacro %}

{#- The grammar itself: seconds, or none when `text` is not a duration. -#}
{% macro _duration_seconds(text) %}
  {%- set units = {'w': 604800, 'd': 86400, 'h': 3600, 'm': 60, 's': 1} -%}
  {%- set cleaned = (text | string | trim | lower) -%}
  {%- if not modules.re.fullmatch('(?:[0-9]+[wdhms])+', cleaned) -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set ns = namespace(seconds=0) -%}
  {%- for number, unit in modules.re.findall('([0-9]+)([wdhms])', cleaned) -%}
    {%- set ns.seconds = ns.seconds + (number | int) * units[unit] -%}
  {%- endfor -%}
  {{ return(ns.seconds) }}
{% endmacro %}

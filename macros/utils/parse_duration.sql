{#-
  Seconds in a compact duration: '30d', '12h', '90m', '45s', '2w', '1d12h'.
  The same grammar as hindsight/durations.py (Python side); keep them in step.
  `what` names the config key in the error, e.g. "ttl of feature view user_profile".
-#}
{% macro parse_duration(text, what='duration') %}
  {%- set units = {'w': 604800, 'd': 86400, 'h': 3600, 'm': 60, 's': 1} -%}
  {%- set cleaned = (text | string | trim | lower) -%}
  {%- if not modules.re.fullmatch('(?:[0-9]+[wdhms])+', cleaned) -%}
    {{ exceptions.raise_compiler_error(
        "Cannot parse the " ~ what ~ ": " ~ (text | string) ~ ". Expected a number and a unit "
        ~ "(w, d, h, m, s), like '30d', '12h' or '1d12h'.") }}
  {%- endif -%}
  {%- set ns = namespace(seconds=0) -%}
  {%- for number, unit in modules.re.findall('([0-9]+)([wdhms])', cleaned) -%}
    {%- set ns.seconds = ns.seconds + (number | int) * units[unit] -%}
  {%- endfor -%}
  {{ return(ns.seconds) }}
{% endmacro %}

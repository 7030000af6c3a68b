{#-
  " (did you mean x?)" for an error message, or '' when no option is close: the Jinja counterpart
  of hindsight.core.suggest.did_you_mean (dbt's Jinja cannot import it). Similarity is
  2 * LCS / (len(a) + len(b)), difflib's ratio measure, with its cutoff of 0.6.
-#}
{% macro did_you_mean(name, options) %}
  {%- set best = namespace(score=0.6, option=none) -%}
  {%- for option in options | unique | sort -%}
    {%- set score = hindsight._similarity(name | string, option | string) -%}
    {%- if score > best.score or (score == best.score and best.option is none) -%}
      {%- set best.score, best.option = score, option -%}
    {%- endif -%}
  {%- endfor -%}
  {{- return('' if best.option is none else ' (did you mean ' ~ best.option ~ '?)') -}}
{% endmacro %}

{#- 2 * (longest common subsequence) / (total length), in [0, 1]. -#}
{% macro _similarity(a, b) %}
  {%- if not a and not b -%}{{ return(1.0) }}{%- endif -%}
  {%- set state = namespace(previous=[0] * (b | length + 1)) -%}
  {%- for x in a -%}
    {%- set current = [0] -%}
    {%- for y in b -%}
      {%- do current.append(state.previous[loop.index0] + 1 if x == y else [state.previous[loop.index], current[-1]] | max) -%}
    {%- endfor -%}
    {%- set state.previous = current -%}
  {%- endfor -%}
  {{ return(2.0 * state.previous[-1] / (a | length + b | length)) }}
{% endmacro %}

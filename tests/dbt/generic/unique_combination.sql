{#- The rows of `model` are unique on the combination of `columns` (a feature view's key). -#}
{% test unique_combination(model, columns) %}
  {%- set quoted = [] -%}
  {%- for c in columns -%}{%- do quoted.append(adapter.quote(c)) -%}{%- endfor -%}
select {{ quoted | join(', ') }}, count(*) as occurrences
from {{ model }}
group by {{ quoted | join(', ') }}
having count(*) > 1
{% endtest %}

{#-
  The WHERE predicate that keeps a model's output inside this run's processing range.

  It is rendered between the comments /* hindsight:processing_range */ and
  /* hindsight:processing_range_end */, in parentheses, so it stays one valid predicate on every
  engine: the stream transform (streams/transform.py) finds a stream-fed view's predicate in its
  compiled SQL and replaces exactly that span by `1 = 1`, running the same SQL over one batch of
  events. PROCESSING_RANGE_START/END in offline_store/event_log.py name the same comments.
-#}
{% macro range_predicate(column, range) %}
  {%- set clauses = [] -%}
  {%- if range.start is not none -%}
    {%- do clauses.append(column ~ ' >= ' ~ hindsight.timestamp_literal(range.start)) -%}
  {%- endif -%}
  {%- if range.end is not none -%}
    {%- do clauses.append(column ~ ' < ' ~ hindsight.timestamp_literal(range.end)) -%}
  {%- endif -%}
  {%- set predicate = clauses | join(' and ') if clauses else '1 = 1' -%}
  {{- return('/* hindsight:processing_range */ (' ~ predicate ~ ') /* hindsight:processing_range_end */') -}}
{% endmacro %}

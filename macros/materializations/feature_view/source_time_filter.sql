{#-
  A predicate for a model's WHERE that keeps only the source rows this run needs: those in the
  processing range, widened back by `history` (e.g. the longest aggregation window).
  Renders `1 = 1` on a full refresh.
    column          the source column holding event time
    history         how much earlier data the model needs, e.g. '30d'
    created_column  the source column holding the created time, for views with a created_field
                    (their incremental runs select by created time)
  Example:
      from {{ source('raw', 'transactions') }} where {{ hindsight.source_time_filter('ts', history='30d') }}
-#}
{% macro source_time_filter(column, history='0s', created_column=none, range=none) %}
  {#- `range`: this run's processing_range(), when the caller already has it (saves a query). -#}
  {%- set range = range or hindsight.processing_range() -%}
  {%- set cfg = hindsight.feature_view_config() if range.column else none -%}
  {%- set by_created = cfg is not none and cfg.created_field and range.column == cfg.created_field -%}
  {%- if by_created and created_column is none -%}
    {{ exceptions.raise_compiler_error(cfg.where ~ ": the view has created_field '" ~ cfg.created_field ~ "', so incremental runs select by created time: pass the source's created column, source_time_filter('" ~ column ~ "', created_column='...').") }}
  {%- endif -%}
  {%- set history_seconds = 0 if by_created else hindsight.parse_duration(history, 'history of source_time_filter') -%}
  {%- set widened = {
      'start': none if range.start is none else range.start - modules.datetime.timedelta(seconds=history_seconds),
      'end': range.end,
  } -%}
  {{- return(hindsight.range_predicate(created_column if by_created else column, widened)) -}}
{% endmacro %}

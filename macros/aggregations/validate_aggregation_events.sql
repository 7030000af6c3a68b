{#-
  Checks an aggregation view's events (a relation of the model's SQL) before they are tiled, and
  returns their column types ({name: lower-case type}) for aggregation_tiles:
    1. every aggregation's input column is in the model's output (the nearest name suggested)
    2. sum, mean and stddev get numeric columns
    3. events with a NULL event time are counted and warned about: they belong to no window, so
       they are not tiled, but never dropped without a word
-#}
{% macro validate_aggregation_events(relation, cfg) %}
  {%- set types = {} -%}
  {%- for column in adapter.get_columns_in_relation(relation) -%}
    {%- do types.update({column.name: column.dtype | lower}) -%}
  {%- endfor -%}
  {%- set star = hindsight.tile_columns().star -%}
  {%- for input in cfg.aggregation.inputs if input.column != star -%}
    {%- if input.column not in types -%}
      {{ exceptions.raise_compiler_error(cfg.where ~ ": rule 'aggregation inputs exist' failed: config 'aggregations' names column " ~ input.column ~ hindsight.did_you_mean(input.column, types.keys() | list) ~ ", which is not in the model's output (columns: " ~ types.keys() | list | join(', ') ~ "). The Delta table was not changed.") }}
    {%- endif -%}
    {%- set numeric_functions = input.functions | select('in', ['sum', 'mean', 'stddev']) | list -%}
    {%- if numeric_functions and not hindsight._is_numeric_type(types[input.column]) -%}
      {{ exceptions.raise_compiler_error(cfg.where ~ ": rule 'numeric inputs' failed: column " ~ input.column ~ " has type " ~ types[input.column] ~ ", but " ~ numeric_functions | join(', ') ~ " need numbers; cast it in the model, or use count, min, max or last on it. The Delta table was not changed.") }}
    {%- endif -%}
  {%- endfor -%}

  {%- set ts = adapter.quote(cfg.timestamp_field) -%}
  {%- set missing = run_query('select count(*) from ' ~ relation ~ ' where ' ~ ts ~ ' is null')[0][0] or 0 -%}
  {%- if missing > 0 -%}
    {%- do exceptions.warn(cfg.where ~ ": " ~ missing ~ " event(s) with a NULL " ~ cfg.timestamp_field ~ " are not tiled: an event without an event time falls in no window. Give them a time or filter them out in the model.") -%}
  {%- endif -%}
  {{ return(types) }}
{% endmacro %}


{% macro _is_numeric_type(dtype) %}
  {%- set base = dtype.split('(')[0] | trim -%}
  {{ return(hindsight._is_integer_type(dtype) or base in ['float', 'double', 'real', 'decimal', 'numeric', 'float4', 'float8']) }}
{% endmacro %}


{#- Integer types of DuckDB and Spark: their sums stay integers (int64), as tiles.sum_dtype says. -#}
{% macro _is_integer_type(dtype) %}
  {%- set base = dtype.split('(')[0] | trim -%}
  {{ return(base in ['tinyint', 'smallint', 'integer', 'int', 'bigint', 'hugeint', 'utinyint', 'usmallint', 'uinteger', 'ubigint', 'int8', 'int4', 'int2', 'long', 'short', 'byte']) }}
{% endmacro %}

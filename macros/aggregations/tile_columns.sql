{#-
  The names of an aggregation feature view's features and tile columns: the Jinja home of what
  hindsight/offline_store/tiles.py says in Python (that module's docstring describes the tiles).
  tests/cases/tile_columns.yml holds the cases both must agree on (tests/unit/test_conformance.py,
  tests/integration/test_conformance_jinja.py).

  tile_columns() returns the constants; tile_part_column, tile_feature_name, tile_default_name and
  tile_parts_needed mirror tiles.part_column, feature_name, default_name and parts_needed.
-#}
{% macro tile_columns() %}
  {{- return({
      'tile_start': '_tile_start',
      'event_count': '_events',
      'star': '*',
      'functions': ['count', 'sum', 'mean', 'min', 'max', 'stddev', 'last'],
      'parts': {
          'count': ['n'],
          'sum': ['n', 'sum'],
          'mean': ['n', 'sum'],
          'min': ['min'],
          'max': ['max'],
          'stddev': ['n', 'sum', 'm2'],
          'last': ['last', 'last_at'],
      },
      'part_order': ['n', 'sum', 'm2', 'min', 'max', 'last', 'last_at'],
  }) -}}
{% endmacro %}

{#- The tile column holding one part of one input column: amount__sum; `*`'s count is _events. -#}
{% macro tile_part_column(column, part) %}
  {%- set names = hindsight.tile_columns() -%}
  {%- if part not in names.part_order -%}
    {{ exceptions.raise_compiler_error("unknown tile part '" ~ part ~ "'; expected one of " ~ names.part_order | join(', ')) }}
  {%- endif -%}
  {%- if column == names.star -%}
    {%- if part != 'n' -%}
      {{ exceptions.raise_compiler_error("column '*' only has an event count (function count)") }}
    {%- endif -%}
    {{- return(names.event_count) -}}
  {%- endif -%}
  {{- return(column ~ '__' ~ part) -}}
{% endmacro %}

{#- The feature an aggregation produces: <name>_<function>_<window>, the window as written, lower case. -#}
{% macro tile_feature_name(name, function, window_label) %}
  {{- return(name ~ '_' ~ function ~ '_' ~ (window_label | string | trim | lower)) -}}
{% endmacro %}

{#- The name an aggregation's features start with when the spec gives none: `event` for `*`. -#}
{% macro tile_default_name(column) %}
  {{- return('event' if column == hindsight.tile_columns().star else column) -}}
{% endmacro %}

{#- The tile columns an input column needs for `functions`, in part order. -#}
{% macro tile_parts_needed(column, functions) %}
  {%- set names = hindsight.tile_columns() -%}
  {%- set wanted = [] -%}
  {%- for function in functions -%}
    {%- for part in names.parts[function] if part not in wanted -%}{%- do wanted.append(part) -%}{%- endfor -%}
  {%- endfor -%}
  {%- set columns = [] -%}
  {%- for part in names.part_order if part in wanted -%}
    {%- do columns.append(hindsight.tile_part_column(column, part)) -%}
  {%- endfor -%}
  {{- return(columns) -}}
{% endmacro %}

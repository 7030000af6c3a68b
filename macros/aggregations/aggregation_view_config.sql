{#-
  The aggregation keys of a feature view's config, read and validated (feature_view_config calls
  this before any SQL runs). A view that sets `aggregation_interval` is an aggregation view: its
  model selects events and its Delta table holds tiles (offline_store/tiles.py,
  aggregation_tiles.sql). Returns none for any other view.

  Keys:
    aggregation_interval  the tile width, e.g. '1h'; intervals align to the Unix epoch (UTC)
    windows               default windows of every aggregation, each a positive multiple of it
    aggregations          [{'column': 'amount' | '*', 'functions': [...], 'name': ..., 'windows': [...]}]
  Every broken rule raises a compiler error naming the model, the key, the rule and the nearest
  valid value.
-#}
{% macro aggregation_view_config(where, ttl, created_field) %}
  {%- set interval = config.get('aggregation_interval') -%}
  {%- set aggregations = config.get('aggregations') -%}
  {%- set windows = config.get('windows') -%}
  {%- if interval is none -%}
    {%- if aggregations is not none or windows is not none -%}
      {{ exceptions.raise_compiler_error(where ~ ": config '" ~ ('aggregations' if aggregations is not none else 'windows') ~ "' needs 'aggregation_interval' (e.g. aggregation_interval='1h'): together they declare an aggregation view. For window features over each event, use window_aggregates() in the model's SQL instead.") }}
    {%- endif -%}
    {{ return(none) }}
  {%- endif -%}

  {%- set names = hindsight.tile_columns() -%}
  {%- set interval_seconds = hindsight.parse_duration(interval, "aggregation_interval of " ~ where) -%}
  {%- if interval_seconds <= 0 -%}
    {{ exceptions.raise_compiler_error(where ~ ": aggregation_interval must be positive, got '" ~ interval ~ "'; e.g. '1h'.") }}
  {%- endif -%}
  {%- if ttl is not none -%}
    {{ exceptions.raise_compiler_error(where ~ ": config 'ttl' is not supported on aggregation views: each window bounds the events its features count, so values never go stale. Remove ttl.") }}
  {%- endif -%}
  {%- if created_field -%}
    {{ exceptions.raise_compiler_error(where ~ ": config 'created_field' is not supported on aggregation views yet: an event counts from its event time (timestamp_field). Remove created_field.") }}
  {%- endif -%}

  {%- if windows is string -%}{%- set windows = [windows] -%}{%- endif -%}
  {%- if windows is not none and (windows is mapping or windows is not iterable) -%}
    {{ exceptions.raise_compiler_error(where ~ ": config 'windows' must be a list of durations, e.g. windows=['1h', '1d'], got " ~ windows ~ ".") }}
  {%- endif -%}
  {%- if not aggregations or aggregations is string or aggregations is mapping or aggregations is not iterable -%}
    {{ exceptions.raise_compiler_error(where ~ ": config 'aggregations' must be a non-empty list, e.g. aggregations=[{'column': '*', 'name': 'txn', 'functions': ['count']}, {'column': 'amount', 'functions': ['sum', 'mean']}].") }}
  {%- endif -%}

  {%- set entry_keys = ['column', 'functions', 'name', 'windows'] -%}
  {%- set features = [] -%}
  {%- set inputs = [] -%}
  {%- set functions_of = {} -%}
  {%- set seen = {} -%}
  {%- for agg in aggregations -%}
    {%- set agg_number = loop.index -%}
    {%- set which = "aggregation " ~ agg_number ~ " of config 'aggregations' in " ~ where -%}
    {%- if agg is not mapping -%}
      {{ exceptions.raise_compiler_error(which ~ ": expected a mapping like {'column': 'amount', 'functions': ['sum']}, got " ~ agg ~ ".") }}
    {%- endif -%}
    {%- for key in agg | sort if key not in entry_keys -%}
      {{ exceptions.raise_compiler_error(which ~ ": unknown key '" ~ key ~ "'" ~ hindsight.did_you_mean(key, entry_keys) ~ "; accepted: " ~ entry_keys | join(', ') ~ ".") }}
    {%- endfor -%}
    {%- set column = agg.get('column') -%}
    {%- if not column or column is not string -%}
      {{ exceptions.raise_compiler_error(which ~ ": 'column' is required: an input column of the model, or '*' to count events.") }}
    {%- endif -%}
    {%- set functions = agg.get('functions') -%}
    {%- if functions is string -%}{%- set functions = [functions] -%}{%- endif -%}
    {%- if not functions or functions is mapping or functions is not iterable -%}
      {{ exceptions.raise_compiler_error(which ~ " (column " ~ column ~ "): 'functions' must be a non-empty list of: " ~ names.functions | join(', ') ~ ".") }}
    {%- endif -%}
    {%- for function in functions -%}
      {%- if function == 'count_distinct' -%}
        {{ exceptions.raise_compiler_error(which ~ " (column " ~ column ~ "): function 'count_distinct' is not supported in aggregation views (distinct counts have no exact tile form). Supported: " ~ names.functions | join(', ') ~ ". For a distinct count as of each event, use window_aggregates(evaluate='event') in a feature view without aggregation_interval.") }}
      {%- endif -%}
      {%- if function not in names.functions -%}
        {{ exceptions.raise_compiler_error(which ~ " (column " ~ column ~ "): unknown function '" ~ function ~ "'" ~ hindsight.did_you_mean(function, names.functions) ~ "; supported: " ~ names.functions | join(', ') ~ ".") }}
      {%- endif -%}
      {%- if column == names.star and function != 'count' -%}
        {{ exceptions.raise_compiler_error(which ~ ": column '*' (every event) only supports function 'count', got '" ~ function ~ "'; name an input column for " ~ function ~ ".") }}
      {%- endif -%}
    {%- endfor -%}
    {%- set agg_windows = agg.get('windows') or windows -%}
    {%- if agg_windows is string -%}{%- set agg_windows = [agg_windows] -%}{%- endif -%}
    {%- if not agg_windows -%}
      {{ exceptions.raise_compiler_error(which ~ " (column " ~ column ~ "): no windows: set config 'windows' (the default of every aggregation), e.g. windows=['1h', '1d'], or 'windows' in this aggregation.") }}
    {%- endif -%}
    {%- set name = agg.get('name') or hindsight.tile_default_name(column) -%}
    {%- for function in functions -%}
      {%- for label in agg_windows -%}
        {%- set seconds = hindsight.parse_duration(label, "window '" ~ label ~ "' of " ~ which) -%}
        {%- if seconds <= 0 or seconds % interval_seconds != 0 -%}
          {%- set nearest = [((seconds / interval_seconds) | round) | int, 1] | max * interval_seconds -%}
          {{ exceptions.raise_compiler_error(which ~ " (column " ~ column ~ "): window '" ~ label ~ "' is not a positive multiple of aggregation_interval '" ~ interval ~ "'; the nearest valid window is '" ~ hindsight._compact_duration(nearest) ~ "'.") }}
        {%- endif -%}
        {%- set feature = hindsight.tile_feature_name(name, function, label) -%}
        {%- if feature in seen -%}
          {{ exceptions.raise_compiler_error(which ~ ": feature " ~ feature ~ " is declared twice (also by aggregation " ~ seen[feature] ~ "); give one of them another 'name' or window.") }}
        {%- endif -%}
        {%- do seen.update({feature: agg_number}) -%}
        {%- do features.append({'name': feature, 'function': function, 'column': column, 'window': label | string | trim | lower, 'window_seconds': seconds}) -%}
      {%- endfor -%}
    {%- endfor -%}
    {%- if column not in functions_of -%}{%- do inputs.append(column) -%}{%- do functions_of.update({column: []}) -%}{%- endif -%}
    {%- for function in functions if function not in functions_of[column] -%}{%- do functions_of[column].append(function) -%}{%- endfor -%}
  {%- endfor -%}

  {#- Tile columns: the event count first, then each input column's parts in order of first use. -#}
  {%- set ordered = ([names.star] if names.star in inputs else []) + (inputs | reject('equalto', names.star) | list) -%}
  {%- set parts = [] -%}
  {%- for column in ordered -%}
    {%- do parts.append({'column': column, 'functions': functions_of[column], 'parts': hindsight.tile_parts_needed(column, functions_of[column])}) -%}
  {%- endfor -%}
  {{ return({
      'interval': interval,
      'interval_seconds': interval_seconds,
      'features': features,
      'inputs': parts,
      'longest_window_seconds': features | map(attribute='window_seconds') | max,
  }) }}
{% endmacro %}


{#- A number of seconds in the compact duration form: 7200 -> '2h', 129600 -> '1d12h' (weeks only when whole). -#}
{% macro _compact_duration(seconds) %}
  {%- set state = namespace(rest=seconds | int, text='') -%}
  {%- for unit, size in [('w', 604800), ('d', 86400), ('h', 3600), ('m', 60), ('s', 1)] -%}
    {%- if not (unit == 'w' and state.rest % size) and state.rest >= size -%}
      {%- set state.text = state.text ~ (state.rest // size) ~ unit -%}
      {%- set state.rest = state.rest % size -%}
    {%- endif -%}
  {%- endfor -%}
  {{- return(state.text or '0s') -}}
{% endmacro %}

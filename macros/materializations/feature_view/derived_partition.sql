{#-
  The partition of a feature view that sets no partition_by: a column the materialization derives
  from timestamp_field (UTC), at a grain its name says:
    _partition_date    the event's day
    _partition_month   the first day of the event's month
  A full build (the first run, or --full-refresh) chooses the grain from the rows it writes: month
  when they average fewer than month_partition_below_rows_per_day() rows per day that has any
  (10,000 unless a var says otherwise), day otherwise. Every later run keeps the grain the table
  has (its column says which), so only a full refresh changes it (not on Sail, which cannot change
  an existing Delta table's columns).

  Why: a training set opens every file of a view, about 0.1 ms each. A view with a few rows a day
  kept by day is mostly file openings (the demo's merchant_profile: 10k rows in 2,162 files); by
  month it is 73 files. Below the threshold a month holds fewer than about 300k rows (about 10 MB
  at 20-35 bytes a row), so an incremental MERGE that scans the newest month stays cheap
  (docs/benchmarks.md, "Delta layout").

  offline_store/derived_partition.py is the Python side (push and stream writes derive the same
  values; the registry reads the grain from the table); tests/cases/derived_partition.yml holds the
  cases both sides must pass.
-#}
{% macro derived_partition_grains() %}
  {{ return({'_partition_date': 'day', '_partition_month': 'month'}) }}
{% endmacro %}

{#- The threshold: 10,000, or the var hindsight_month_partition_below_rows_per_day (0: always daily). -#}
{% macro month_partition_below_rows_per_day() %}
  {%- set value = var('hindsight_month_partition_below_rows_per_day', 10000) -%}
  {%- if value is not number or value < 0 -%}
    {{ exceptions.raise_compiler_error("var hindsight_month_partition_below_rows_per_day must be a number of rows, 0 or more (0: always daily partitions), got " ~ value ~ "; the default is 10000.") }}
  {%- endif -%}
  {{ return(value) }}
{% endmacro %}

{#- The grain a full build chooses for `rows` staged rows on `days` distinct days: a column name. -#}
{% macro derived_partition_for(rows, days) %}
  {%- if days and rows / days < hindsight.month_partition_below_rows_per_day() -%}
    {{ return('_partition_month') }}
  {%- endif -%}
  {{ return('_partition_date') }}
{% endmacro %}

{#-
  The derived partition column of this run: chosen from the staged rows (`staged`, as
  validate_feature_view_rows counted them) on a full build, else the one the table has.
  `rechoose=false`: a full refresh on an engine that cannot replace an existing table's schema
  (Sail) keeps the table's grain too.
-#}
{% macro derived_partition_column(cfg, range, staged, rechoose=true) %}
  {%- if range.mode == 'full_refresh' and rechoose -%}
    {{ return(hindsight.derived_partition_for(staged.rows, staged.days)) }}
  {%- endif -%}
  {%- set columns = get_columns_in_query('select * from ' ~ hindsight.feature_view_relation(cfg.location)) -%}
  {%- for column in hindsight.derived_partition_grains() if column in columns -%}
    {{ return(column) }}
  {%- endfor -%}
  {#- A table partitioned otherwise (partition_by was set before): the writer names the mismatch. -#}
  {{ return('_partition_date') }}
{% endmacro %}

{#- The SQL value of derived partition `column` for a row: a date. -#}
{% macro derived_partition_value(column, timestamp_field) %}
  {%- set ts = adapter.quote(timestamp_field) -%}
  {%- if hindsight.derived_partition_grains()[column] == 'month' -%}
    {{ return('cast(' ~ dbt.date_trunc('month', ts) ~ ' as date)') }}
  {%- endif -%}
  {{ return('cast(' ~ ts ~ ' as date)') }}
{% endmacro %}

{#- The partition value of `column` for a datetime (UTC), as an ISO date string (MERGE pruning bounds). -#}
{% macro derived_partition_of(column, moment) %}
  {%- if hindsight.derived_partition_grains()[column] == 'month' -%}
    {{ return(moment.strftime('%Y-%m-01')) }}
  {%- endif -%}
  {{ return(moment.strftime('%Y-%m-%d')) }}
{% endmacro %}

{#-
  Every config key of the `feature_view` materialization, read with its default and validated
  before any SQL runs. Returns a dict the materialization and its helpers share.

  Keys (see docs/feature-views.md):
    entities         join-key column(s)                                    required
    timestamp_field  event-time column                                     required
    ttl              how long a value stays valid, e.g. '30d'              none (never stale)
    expected_freshness  how old the newest value may grow before `hindsight status` fails, e.g. '1d'
                     2 x dbt's freshness.build_after if set, else ttl, else none (not checked)
    online           sync to the online store                              false
    created_field    when each value became known (late corrections)       none
    partition_by     Delta partition column(s)                             derived from timestamp_field: _partition_date
                     or _partition_month, by the full build's rows per day (derived_partition.sql)
    allowed_lateness how far back an incremental run recomputes            '3d'
    on_schema_change fail | append_new_columns                             fail
    future_rows      defer | fail: rows whose time is after the run's clock defer
    allow_empty_full_refresh  a full refresh may empty a table holding rows  false (or var of that name)
    location         the Delta table's URI                                 <location_root>/<model>
    location_root    folder of the view's Delta table                      offline_store of hindsight.yml
    aggregation_interval, windows, aggregations   make it an aggregation view: the model selects
                     events, the table holds tiles (macros/aggregations/aggregation_view_config.sql)
    push             the view takes pushed rows, kept through every run (pushed_rows.sql)  false
    push_partial     a push may carry a subset of the features (needs push)      false
  A key the user sets (in config(), the model's .yml or dbt_project.yml) that is neither one of
  these nor one of dbt's own fails the run, naming the nearest valid key: a typo such as `onlin`
  must not silently leave a view offline.
-#}
{#- Every config key a feature view accepts: the materialization's own, and dbt's. The one list. -#}
{% macro feature_view_config_keys() %}
  {{- return({
      'feature_view': [
          'entities', 'timestamp_field', 'ttl', 'online', 'created_field', 'partition_by',
          'allowed_lateness', 'on_schema_change', 'location', 'location_root', 'future_rows',
          'allow_empty_full_refresh', 'expected_freshness', 'aggregation_interval', 'windows', 'aggregations',
          'push', 'push_partial',
      ],
      'dbt': [
          'enabled', 'alias', 'schema', 'database', 'tags', 'meta', 'group', 'access', 'docs', 'contract',
          'materialized', 'incremental_strategy', 'unique_key', 'on_schema_change', 'on_configuration_change',
          'persist_docs', 'post-hook', 'pre-hook', 'post_hook', 'pre_hook', 'quoting', 'column_types',
          'full_refresh', 'grants', 'packages', 'event_time', 'batch_size', 'lookback', 'begin',
          'concurrent_batches', 'freshness', 'static_analysis', 'sql_header',
      ],
  }) -}}
{% endmacro %}

{% macro feature_view_config() %}
  {%- set model_name = model.name -%}
  {%- set where = "feature view " ~ model_name ~ " (" ~ model.original_file_path ~ ")" -%}
  {%- do hindsight._check_config_keys(model_name ~ " (" ~ model.original_file_path ~ ")") -%}

  {%- set entities = config.get('entities') -%}
  {%- if entities is string -%}{%- set entities = [entities] -%}{%- endif -%}
  {%- if not entities -%}
    {{ exceptions.raise_compiler_error(where ~ ": config 'entities' is required: the join-key column(s), e.g. entities=['user_id'].") }}
  {%- endif -%}

  {%- set timestamp_field = config.get('timestamp_field') -%}
  {%- if not timestamp_field or timestamp_field is not string -%}
    {{ exceptions.raise_compiler_error(where ~ ": config 'timestamp_field' is required: the column holding each row's event time.") }}
  {%- endif -%}
  {%- if timestamp_field in entities -%}
    {{ exceptions.raise_compiler_error(where ~ ": timestamp_field '" ~ timestamp_field ~ "' is also listed in entities.") }}
  {%- endif -%}

  {%- set created_field = config.get('created_field') -%}
  {%- if created_field and (created_field == timestamp_field or created_field in entities) -%}
    {{ exceptions.raise_compiler_error(where ~ ": created_field '" ~ created_field ~ "' must differ from the timestamp and entity columns.") }}
  {%- endif -%}

  {%- set ttl = config.get('ttl') -%}
  {%- set ttl_seconds = none if ttl is none else hindsight.parse_duration(ttl, "ttl of " ~ where) -%}
  {%- set lateness_seconds = hindsight.parse_duration(config.get('allowed_lateness', '3d'), "allowed_lateness of " ~ where) -%}
  {#- Read by the registry and `hindsight status`, not by the build: checked here so a typo fails the run. -#}
  {%- set expected_freshness = config.get('expected_freshness') -%}
  {%- if expected_freshness is not none -%}
    {%- do hindsight.parse_duration(expected_freshness, "expected_freshness of " ~ where) -%}
  {%- endif -%}

  {%- set online = config.get('online', false) -%}
  {%- if online not in [true, false] -%}
    {{ exceptions.raise_compiler_error(where ~ ": config 'online' must be true or false, got " ~ online ~ ".") }}
  {%- endif -%}

  {#- dbt fills in its own default ('ignore') when nothing sets the key: only a value the user set
      (config(), the .yml or dbt_project.yml: the unrendered config) counts, else 'fail'. -#}
  {%- set on_schema_change = (config.get('on_schema_change') if 'on_schema_change' in (model.unrendered_config or {}) else none) or 'fail' -%}
  {%- set accepted_policies = ['fail', 'append_new_columns'] -%}
  {%- if on_schema_change not in accepted_policies -%}
    {{ exceptions.raise_compiler_error(where ~ ": on_schema_change '" ~ on_schema_change ~ "' is not supported by feature views; use one of: " ~ accepted_policies | join(', ') ~ " (the default is fail).") }}
  {%- endif -%}

  {%- set future_rows = config.get('future_rows') or 'defer' -%}
  {%- if future_rows not in ['defer', 'fail'] -%}
    {{ exceptions.raise_compiler_error(where ~ ": future_rows '" ~ future_rows ~ "' is not supported; use one of: defer, fail.") }}
  {%- endif -%}
  {%- set allow_empty = var('allow_empty_full_refresh', config.get('allow_empty_full_refresh', false)) -%}
  {%- if allow_empty not in [true, false] -%}
    {{ exceptions.raise_compiler_error(where ~ ": allow_empty_full_refresh must be true or false, got " ~ allow_empty ~ ".") }}
  {%- endif -%}

  {%- set aggregation = hindsight.aggregation_view_config(where, ttl, created_field) -%}
  {%- set push = hindsight.push_config(where, aggregation) -%}

  {%- set derived_partition = config.get('partition_by') is none -%}
  {%- set partition_by = hindsight.feature_view_partition_by(config.get('partition_by')) -%}
  {%- for column in partition_by if aggregation and not derived_partition and column not in entities -%}
    {{ exceptions.raise_compiler_error(where ~ ": partition_by column '" ~ column ~ "' is not in an aggregation view's table (its tiles hold the entities, " ~ timestamp_field ~ ", _tile_start and partial aggregates): partition by an entity column, or leave partition_by unset for the default date partition (_partition_date or _partition_month).") }}
  {%- endfor -%}
  {%- set location = hindsight.this_feature_view_location(where) -%}

  {#- The breaking-change gate's way out: a var, so it is a decision of one run, never left in code. -#}
  {%- set allow_breaking = var('hindsight_allow_breaking', false) -%}
  {%- if allow_breaking not in [true, false, 'true', 'false'] -%}
    {{ exceptions.raise_compiler_error(where ~ ": var hindsight_allow_breaking must be true or false, got " ~ allow_breaking ~ ".") }}
  {%- endif -%}

  {#- Floats closer than this (relative) count as unchanged when an incremental run compares rows:
      window sums recomputed over a different set of rows differ in their last bits, and rewriting
      those rows would churn files and the change data feed. The Spark MERGE and the delta-rs
      writer (which gets it in the write request) both use this one value. -#}
  {%- set float_tolerance = 1e-9 -%}
  {%- set unique_key = entities + [timestamp_field] + ([created_field] if created_field else []) -%}
  {{ return({
      'model': model_name,
      'where': where,
      'entities': entities,
      'timestamp_field': timestamp_field,
      'created_field': created_field,
      'ttl': ttl,
      'ttl_seconds': ttl_seconds,
      'online': online,
      'lateness_seconds': lateness_seconds,
      'on_schema_change': on_schema_change,
      'future_rows': future_rows,
      'allow_empty_full_refresh': allow_empty,
      'partition_by': partition_by,
      'derived_partition': derived_partition,
      'location': location,
      'unique_key': unique_key,
      'allow_breaking': allow_breaking in [true, 'true'],
      'float_tolerance': float_tolerance,
      'aggregation': aggregation,
      'push': push.push,
      'push_partial': push.push_partial,
      'pushed_column': push.pushed_column,
      'drop_pushed_rows': push.drop_pushed_rows,
  }) }}
{% endmacro %}


{#-
  Fails on a config key the user set that no one reads. `model.unrendered_config` holds exactly
  the keys the user set (config(), .yml, dbt_project.yml), where `model.config` also holds every
  default dbt fills in.
-#}
{% macro _check_config_keys(where) %}
  {%- set keys = hindsight.feature_view_config_keys() -%}
  {%- set known = keys.feature_view + keys.dbt -%}
  {%- for key in (model.unrendered_config or {}) | sort if key not in known -%}
    {{ exceptions.raise_compiler_error(where ~ ": unknown config key '" ~ key ~ "'" ~ hindsight.did_you_mean(key, known) ~ ". Feature view keys: " ~ keys.feature_view | join(', ') ~ "; dbt's own keys are accepted too.") }}
  {%- endfor -%}
{% endmacro %}

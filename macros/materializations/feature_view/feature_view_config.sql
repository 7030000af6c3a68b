{#-
  Every config key of the `feature_view` materialization, read with its default and validated
  before any SQL runs. Returns a dict the materialization and its helpers share.

  Keys (see README "Writing a feature view"):
    entities         join-key column(s)                                    required
    timestamp_field  event-time column                                     required
    ttl              how long a value stays valid, e.g. '30d'              none (never stale)
    online           sync to the online store                              false
    created_field    when each value became known (late corrections)       none
    partition_by     Delta partition column(s)                             _partition_date (date of timestamp_field)
    allowed_lateness how far back an incremental run recomputes            '3d'
    on_schema_change fail | append_new_columns                             fail
    location         the Delta table's URI                                 <location_root>/<model>
-#}
{% macro feature_view_config() %}
  {%- set model_name = model.name -%}
  {%- set where = "feature view " ~ model_name ~ " (" ~ model.original_file_path ~ ")" -%}

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

  {%- set online = config.get('online', false) -%}
  {%- if online not in [true, false] -%}
    {{ exceptions.raise_compiler_error(where ~ ": config 'online' must be true or false, got " ~ online ~ ".") }}
  {%- endif -%}

  {%- set on_schema_change = config.get('on_schema_change') or 'fail' -%}
  {%- set accepted_policies = ['fail', 'append_new_columns'] -%}
  {%- if on_schema_change not in accepted_policies -%}
    {{ exceptions.raise_compiler_error(where ~ ": on_schema_change '" ~ on_schema_change ~ "' is not supported by feature views; use one of: " ~ accepted_policies | join(', ') ~ " (dbt_project.yml sets fail for models/features).") }}
  {%- endif -%}

  {%- set derived_partition = config.get('partition_by') is none -%}
  {%- set partition_by = hindsight.feature_view_partition_by(config.get('partition_by')) -%}
  {%- set location = hindsight.feature_view_location(config.get('location'), config.get('location_root'), this.identifier, where) -%}

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
      'partition_by': partition_by,
      'derived_partition': derived_partition,
      'location': location,
      'unique_key': unique_key,
      'float_tolerance': float_tolerance,
  }) }}
{% endmacro %}

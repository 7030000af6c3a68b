{#-
  The Delta partition column(s) of a feature view: `partition_by` as a list, or, when the model
  sets none, `_partition_date`, which the materialization derives as the date of timestamp_field.
  registry_sync/manifest.py applies the same rule (cases: tests/cases/feature_view_storage.yml).
-#}
{% macro feature_view_partition_by(partition_by) %}
  {%- if partition_by is none -%}
    {{ return(['_partition_date']) }}
  {%- elif partition_by is string -%}
    {{ return([partition_by]) }}
  {%- endif -%}
  {{ return(partition_by | list) }}
{% endmacro %}

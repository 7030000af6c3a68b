{#-
  Where a feature view's Delta table lives: `location` if the model sets it, else
  <location_root>/<identifier> (the model's alias or name). registry_sync/manifest.py reads the same
  config from dbt's manifest to find the table; tests/cases/feature_view_storage.yml holds the cases
  both must agree on (tests/unit/test_conformance.py, tests/integration/test_conformance_jinja.py).
-#}
{% macro feature_view_location(location, location_root, identifier, where) %}
  {%- set found = hindsight._feature_view_location(location, location_root, identifier) -%}
  {%- if found is none -%}
    {{ exceptions.raise_compiler_error(where ~ ": no Delta location: set location_root (dbt_project.yml sets it for models/features) or location.") }}
  {%- endif -%}
  {{ return(found) }}
{% endmacro %}

{#- The rule itself: the location, or none when neither key is set. -#}
{% macro _feature_view_location(location, location_root, identifier) %}
  {%- if location -%}
    {{ return(location) }}
  {%- elif location_root -%}
    {{ return(location_root.rstrip('/') ~ '/' ~ identifier) }}
  {%- endif -%}
  {{ return(none) }}
{% endmacro %}

{#- The current model's Delta table (feature_view_config and feature_view_exists both ask). -#}
{% macro this_feature_view_location(where) %}
  {#- No root configured: the project's offline store (hindsight.yml, HINDSIGHT_OFFLINE_STORE). -#}
  {%- set location_root = config.get('location_root') or hindsight.project_setting('offline_store') -%}
  {{ return(hindsight.feature_view_location(config.get('location'), location_root, this.identifier, where)) }}
{% endmacro %}

{#-
  The registry folder (`registry` in hindsight.yml; HINDSIGHT_REGISTRY overrides it), where
  `hindsight apply` writes contracts.jsonl, which the breaking-change gate reads. Relative paths
  resolve against the folder dbt runs in, as the hindsight CLI resolves them.
-#}
{% macro registry_location() %}
  {{- return(hindsight.project_setting('registry')) -}}
{% endmacro %}

{#-
  True when the dbt project being run is Hindsight's own (the fraud demo), false when Hindsight is
  installed as a package in a user's project. The demo's models, sources, exposures, unit tests and
  hooks are enabled only when this is true, so `dbt deps` brings a user the materialization and the
  macros and nothing of the demo.

  dbt renders model `config()`, schema .yml `config:` and hooks with `project_name` set to the ROOT
  project's name (the project dbt was run in), whichever package the node belongs to. dbt_project.yml
  itself is rendered without `project_name`, so a `+enabled` there cannot make this decision.
  Schema .yml files cannot call macros: they compare `project_name == 'hindsight'` directly, the
  same rule as here.
-#}
{% macro is_demo_project() %}
  {{- return(project_name == 'hindsight') -}}
{% endmacro %}

{#-
  A setting of the project's hindsight.yml, read at run time, e.g. the feature_view
  materialization's default Delta root: `hindsight.project_setting('offline_store')`.

  Resolution, as the Python side (hindsight.core.config) resolves it: the environment variable
  (HINDSIGHT_OFFLINE_STORE, ...) > the key in <project dir>/hindsight.yml > the documented default.
  A relative path is returned as it is: dbt runs in the project folder (it changes into
  --project-dir), so the path means <project dir>/<path> to dbt-duckdb and to a Spark server started
  there (`hindsight spark up`), as it does to the Python side. URIs (s3://...) are kept as they are.

  dbt's Jinja cannot open files, so the file is read through the engine (`read_project_file`),
  once per dbt command (run_cache); during parsing (execute is false) nothing is read and the default is returned.
-#}
{% macro project_setting(key) %}
  {%- set known = {
      'offline_store': {'env': 'HINDSIGHT_OFFLINE_STORE', 'default': 'data/offline_store'},
      'registry': {'env': 'HINDSIGHT_REGISTRY', 'default': 'data/registry'},
      'state': {'env': 'HINDSIGHT_STATE', 'default': 'data/state'},
      'on_demand': {'env': 'HINDSIGHT_ON_DEMAND', 'default': 'on_demand'},
  } -%}
  {%- if key not in known -%}
    {{ exceptions.raise_compiler_error("hindsight.project_setting: unknown key '" ~ key ~ "'; accepted: " ~ known.keys() | list | sort | join(', ')) }}
  {%- endif -%}
  {%- set spec = known[key] -%}
  {%- set value = env_var(spec['env'], '') -%}
  {%- if not value and execute -%}
    {%- set file = 'hindsight.yml' -%}
    {%- set files = hindsight.run_cache().setdefault('project_files', {}) -%}
    {%- if file not in files -%}{%- do files.update({file: hindsight.read_project_file(file)}) -%}{%- endif -%}
    {%- set text = files[file] -%}
    {%- set settings = fromyaml(text) if text else none -%}
    {%- if settings is not none and settings is not mapping -%}
      {{ exceptions.raise_compiler_error(file ~ ": expected a mapping of settings (offline_store: ..., registry: ...), got " ~ settings) }}
    {%- endif -%}
    {%- set value = (settings or {}).get(key) -%}
    {%- if value is not none and value is not string -%}
      {{ exceptions.raise_compiler_error(file ~ ": '" ~ key ~ "' must be a string (a path or URI), got " ~ value) }}
    {%- endif -%}
  {%- endif -%}
  {{ return(value or spec['default']) }}
{% endmacro %}

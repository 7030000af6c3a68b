{#-
  The body of every dispatched macro's default__ that has no portable SQL: a compiler error naming
  the macro, the adapter in use and the adapters Hindsight supports, instead of SQL that would fail
  later, far from its cause, on an engine nobody tested.
-#}
{% macro unsupported_adapter(macro_name) %}
  {{ exceptions.raise_compiler_error("hindsight." ~ macro_name ~ " has no implementation for the " ~ adapter.type() ~ " adapter; Hindsight supports the duckdb and spark adapters (dbt-duckdb, dbt-spark).") }}
{% endmacro %}

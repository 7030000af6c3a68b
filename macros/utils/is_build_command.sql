{#-
  True when the dbt command being run builds things (run, build, seed, snapshot, test, retry,
  clone), false for the read-only ones (compile, docs generate, show, list, ...). dbt renders the
  on-run-start hooks in `dbt compile` and `dbt docs generate` too, without executing their SQL, but
  any run_query in them runs while they render: hooks that change the catalog check this first, so
  those commands leave the catalog as it was.
-#}
{% macro is_build_command() %}
  {{- return(execute and flags.WHICH in ['run', 'build', 'seed', 'snapshot', 'test', 'retry', 'clone']) -}}
{% endmacro %}

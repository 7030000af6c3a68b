{#-
  Catalog entries of feature views on Spark. spark_register_delta_table points `relation` at the
  existing Delta table at `location`; spark_drop_external_table removes an entry that points
  elsewhere. A managed table is never dropped (its data would go with it): that is an error
  naming the table.
-#}
{% macro spark_register_delta_table(relation, location) %}
  {%- do run_query('create table if not exists ' ~ relation ~ " using delta location '" ~ hindsight.spark_string(location) ~ "'") -%}
  {%- do adapter.cache_added(relation.incorporate(type='table')) -%}
  {{ log("hindsight: registered " ~ relation ~ " over the Delta table at " ~ location, info=true) }}
{% endmacro %}

{% macro spark_drop_external_table(relation, entry) %}
  {%- if 'Type: EXTERNAL' not in entry -%}
    {{ exceptions.raise_compiler_error("feature view " ~ relation.identifier ~ ": the catalog table " ~ relation ~ " is not an external Delta table at the view's location (" ~ (hindsight._spark_entry_location(entry) or 'no location') ~ "); drop or rename it, then run again.") }}
  {%- endif -%}
  {%- do run_query('drop table if exists ' ~ relation) -%}
  {%- do adapter.cache_dropped(relation) -%}
  {{ log("hindsight: dropped the catalog entry " ~ relation ~ ", which pointed at " ~ hindsight._spark_entry_location(entry), info=true) }}
{% endmacro %}

{#-
  Every function window_aggregates accepts, in one table: adding a function is one entry here.
    sql   the aggregate of one value, `{v}` standing for it: the by-join formulation applies it to
          the events in the window, the window formulation adds `over <window>`
          (aggregate_over_window); none where every engine needs its own spelling ('last')
    tile  the window rebuilt from step-sized tiles (window_aggregates_by_tiles.sql) out of the tile
          columns {n} (count), {s} (sum), {lo} (min), {hi} (max), {last} (the window's last value),
          over window {w}; none when it cannot be (a window of such a function is then computed
          over the events: count_distinct does not pre-aggregate, and stddev from tile sums of
          squares loses precision near zero variance)
  Engine differences stay in aggregate_over_window's dispatch variants (count_distinct and last on
  Spark and DuckDB, stddev on Sail).
-#}
{% macro aggregation_functions() %}
  {{ return({
      'count': {'sql': 'count({v})', 'tile': 'cast(coalesce(sum({n}) over {w}, 0) as ' ~ dbt.type_bigint() ~ ')'},
      'sum': {'sql': 'sum({v})', 'tile': 'sum({s}) over {w}'},
      'mean': {'sql': 'avg({v})', 'tile': 'sum({s}) over {w} / nullif(sum({n}) over {w}, 0)'},
      'min': {'sql': 'min({v})', 'tile': 'min({lo}) over {w}'},
      'max': {'sql': 'max({v})', 'tile': 'max({hi}) over {w}'},
      'stddev': {'sql': 'stddev_samp({v})', 'tile': none},
      'last': {'sql': none, 'tile': '{last}'},
      'count_distinct': {'sql': 'count(distinct {v})', 'tile': none},
  }) }}
{% endmacro %}

"""Hindsight: a SQL-first feature store for dbt teams.

The package holds what fronts the other components: the `hindsight` CLI (`hindsight.cli`), project
paths and settings (`hindsight.settings`), the demo data generator (`hindsight.demo_data`), and the
notebook SDK re-exported below.
"""

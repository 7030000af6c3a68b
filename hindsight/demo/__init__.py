"""The demo data generator's internals: a seeded, synthetic card-fraud world.

Owns how the raw demo tables (users, merchants, transactions, user_updates) are simulated and
written as Parquet part files under `<raw_dir>/<table>/part-*.parquet`, where the dbt source `raw`
reads them, plus a small `_demo_data.json` beside them that records what was written so an
append can refuse mismatched arguments. Reads nothing but its arguments; writes only those folders.

The public entry point is `hindsight.demo_data` (`generate`, `write_demo_data`); the modules here
are its parts:

- `domain`: the world's constants (countries, categories, tiers, daily cycle), scales, seeds.
- `window`: the 180-day time window in microseconds and the same-microsecond tie breaker.
- `entities`: users and merchants, with the hidden traits that drive behaviour.
- `profiles`: the slowly changing user profile (user_updates) and where each user lives when.
- `transactions`: card transactions day by day, organic and fraud bursts.
- `raw_files`: Arrow schemas, part files, loaded_at filtering and the manifest.
"""

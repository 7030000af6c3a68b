{#-
  A stream feature view (docs/aggregation-views.md): an aggregation view over the stream source
  streams.transactions. dbt builds its 1-minute tiles from the event log like any aggregation view
  (training sets read them); online, every ingested transaction updates the user's tiles as it is
  acknowledged, by running this same SQL over the batch of new events (its processing-range
  predicate replaced by `1 = 1`). So txn_count_10m is "the user's transactions in the last 10
  minutes" (9 to 10 minutes: 1-minute steps), fresh within milliseconds of the event.
-#}
{{ config(
    enabled=hindsight.is_demo_project(),
    entities=['user_id'],
    timestamp_field='event_timestamp',
    aggregation_interval='1m',
    windows=['10m', '1h'],
    aggregations=[
        {'column': '*', 'name': 'txn', 'functions': ['count']},
        {'column': 'amount', 'functions': ['sum', 'mean', 'max']},
    ],
    online=true,
    tags=['fraud', 'stream'],
) }}

with transactions as (
    select user_id, ts, amount
    from {{ source('streams', 'transactions') }}
    where {{ hindsight.source_time_filter('ts') }}
)

select
    user_id,
    ts as event_timestamp,
    amount
from transactions

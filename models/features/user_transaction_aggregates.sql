{#-
  An aggregation feature view (docs/aggregation-views.md): the SQL selects the card holders'
  transactions, the config declares what to aggregate. Its Delta table holds 5-minute tiles of
  partial aggregates; training sets and serving combine them at the time t they are asked for, so
  txn_count_1h counts the transactions from the start of the 5-minute interval 55 minutes before
  t's up to t (between 55 and 60 minutes), also days after the user's last one (it is 0 then).
  A finer interval makes windows closer to "the last hour" and costs more tiles: 5 minutes is
  about one tile per transaction on this data.
-#}
{{ config(
    enabled=hindsight.is_demo_project(),
    entities=['user_id'],
    timestamp_field='event_timestamp',
    aggregation_interval='5m',
    windows=['1h', '1d', '7d', '30d'],
    aggregations=[
        {'column': '*', 'name': 'txn', 'functions': ['count']},
        {'column': 'amount', 'functions': ['sum', 'mean', 'max']},
        {'column': 'amount', 'functions': ['min', 'stddev'], 'windows': ['7d', '30d']},
        {'column': 'country', 'functions': ['last'], 'windows': ['30d']},
    ],
    online=true,
    tags=['fraud'],
) }}

with transactions as (
    select user_id, ts, amount, country
    from {{ source('raw', 'transactions') }}
    where {{ hindsight.source_time_filter('ts') }}
)

select
    user_id,
    ts as event_timestamp,
    amount,
    country
from transactions

{#-
  An aggregation feature view (docs/aggregation-views.md) over the merchants' transactions, in
  daily tiles: volume and fraud rate over the last 7 and 30 days. The fraud rate is the mean of
  the 0/1 fraud flag (fraud_mean_7d, fraud_mean_30d): the share of the transactions in the window
  that were labelled fraudulent.
-#}
{{ config(
    enabled=hindsight.is_demo_project(),
    entities=['merchant_id'],
    timestamp_field='event_timestamp',
    aggregation_interval='1d',
    windows=['7d', '30d'],
    aggregations=[
        {'column': '*', 'name': 'txn', 'functions': ['count']},
        {'column': 'amount', 'functions': ['sum']},
        {'column': 'fraud', 'functions': ['mean']},
    ],
    online=true,
    tags=['fraud'],
) }}

with transactions as (
    select merchant_id, ts, amount, is_fraud
    from {{ source('raw', 'transactions') }}
    where {{ hindsight.source_time_filter('ts') }}
)

select
    merchant_id,
    ts as event_timestamp,
    amount,
    cast(is_fraud as integer) as fraud
from transactions

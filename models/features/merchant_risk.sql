{{ config(
    enabled=hindsight.is_demo_project(),
    entities=['merchant_id'],
    timestamp_field='event_timestamp',
    ttl='2d',
    online=true,
    tags=['fraud'],
) }}

with transactions as (
    select merchant_id, ts, amount, cast(is_fraud as integer) as fraud
    from {{ source('raw', 'transactions') }}
),

daily as (
    {{ hindsight.window_aggregates(
        relation='transactions',
        entities=['merchant_id'],
        timestamp='ts',
        timestamp_alias='event_timestamp',
        windows=['7d', '30d'],
        evaluate='1d',
        aggregations=[
            {'column': '*', 'name': 'txn', 'functions': ['count']},
            {'column': 'amount', 'functions': ['sum']},
            {'column': 'fraud', 'functions': ['sum']},
        ],
    ) }}
)

select
    merchant_id,
    event_timestamp,
    txn_count_7d,
    txn_count_30d,
    amount_sum_7d,
    amount_sum_30d,
    cast(fraud_sum_7d as double) / nullif(txn_count_7d, 0) as fraud_rate_7d,
    cast(fraud_sum_30d as double) / nullif(txn_count_30d, 0) as fraud_rate_30d
from daily

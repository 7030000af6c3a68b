{{ config(
    enabled=hindsight.is_demo_project(),
    entities=['user_id'],
    timestamp_field='event_timestamp',
    ttl='30d',
    online=true,
    tags=['fraud'],
) }}

with transactions as (
    select user_id, ts, amount, merchant_id, country
    from {{ source('raw', 'transactions') }}
),

aggregates as (
    {{ hindsight.window_aggregates(
        relation='transactions',
        entities=['user_id'],
        timestamp='ts',
        timestamp_alias='event_timestamp',
        windows=['1h', '1d', '7d', '30d'],
        aggregations=[
            {'column': '*', 'name': 'txn', 'functions': ['count']},
            {'column': 'amount', 'functions': ['sum', 'mean', 'max']},
            {'column': 'amount', 'functions': ['min', 'stddev'], 'windows': ['7d', '30d']},
            {'column': 'merchant_id', 'name': 'merchant', 'functions': ['count_distinct'], 'windows': ['1d', '30d']},
            {'column': 'country', 'functions': ['last'], 'windows': ['30d']},
        ],
    ) }}
)

select * from aggregates

{{ config(
    enabled=hindsight.is_demo_project(),
    entities=['merchant_id'],
    timestamp_field='event_timestamp',
    online=true,
    tags=['fraud'],
) }}

with merchants as (
    select merchant_id, category, country, created_ts
    from {{ source('raw', 'merchants') }}
    where {{ hindsight.source_time_filter('created_ts') }}
)

select
    merchant_id,
    created_ts as event_timestamp,
    category,
    country
from merchants

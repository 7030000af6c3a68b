{{ config(
    enabled=hindsight.is_demo_project(),
    entities=['user_id'],
    timestamp_field='event_timestamp',
    created_field='created_timestamp',
    online=true,
    push=true,
    tags=['profile'],
) }}

with updates as (
    select user_id, home_country, credit_limit, account_tier, updated_at, loaded_at
    from {{ source('raw', 'user_updates') }}
    where {{ hindsight.source_time_filter('updated_at', created_column='loaded_at') }}
),

users as (
    select user_id, signup_ts, birth_year
    from {{ source('raw', 'users') }}
)

select
    updates.user_id,
    updates.updated_at as event_timestamp,
    updates.loaded_at as created_timestamp,
    updates.home_country,
    updates.credit_limit,
    updates.account_tier,
    users.signup_ts,
    users.birth_year
from updates
left join users on users.user_id = updates.user_id

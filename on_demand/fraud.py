"""On-demand views of the fraud demo: features that compare a transaction with the user's history.

>>> transaction_context.compute({"amount_mean_30d": [50.0, None, 0.0], "home_country": ["FR", "FR", None],
...                              "amount": [100.0, 3.0, 1.0], "country": ["FR", "DE", "FR"]})
{'amount_vs_user_mean_30d': [2.0, None, None], 'is_foreign_country': [False, True, None]}
"""

from __future__ import annotations

from hindsight.on_demand.view import on_demand_feature_view


@on_demand_feature_view(
    name="transaction_context",
    feature_inputs=["user_transaction_aggregates:amount_mean_30d", "user_profile:home_country"],
    request_fields={"amount": "float64", "country": "string"},
    outputs={"amount_vs_user_mean_30d": "float64", "is_foreign_country": "bool"},
    description="How this transaction compares with the user's usual amount and home country.",
    owner="fraud",
    tags=["fraud", "demo"],
)
def transaction_context(rows: dict[str, list]) -> dict[str, list]:
    """amount / the user's 30-day mean amount, and whether the country differs from home.

    NULL in, NULL out: no 30-day mean (or a mean of 0) or no known home country gives None.
    """
    return {
        "amount_vs_user_mean_30d": [
            None if amount is None or not mean else amount / mean
            for amount, mean in zip(rows["amount"], rows["amount_mean_30d"])
        ],
        "is_foreign_country": [
            None if country is None or home is None else country != home
            for country, home in zip(rows["country"], rows["home_country"])
        ],
    }

"""On-demand views over a joined training set: Arrow columns in, typed Arrow columns out."""

from __future__ import annotations

import pyarrow as pa

from hindsight.on_demand.fraud import transaction_context
from hindsight.training_sets.on_demand_step import run_on_demand
from hindsight.training_sets.plan import OnDemandStep


def test_inputs_come_from_joined_columns_and_request_fields_from_the_spine() -> None:
    joined = {
        "__hs_input__mean": pa.chunked_array([pa.array([10.0, None, 0.0])]),
        "home": pa.chunked_array([pa.array(["FR", "FR", None])]),
    }
    spine = pa.table({"amount": [25, 3, 1], "country": ["FR", "DE", "FR"], "label": [1, 0, 1]})
    step = OnDemandStep(
        transaction_context,
        inputs={"amount_mean_30d": "__hs_input__mean", "home_country": "home"},
        outputs={"is_foreign_country": "foreign", "amount_vs_user_mean_30d": "ratio"},
    )
    result = run_on_demand(step, joined, spine)
    assert list(result) == ["foreign", "ratio"]
    assert result["foreign"].type == pa.bool_() and result["foreign"].to_pylist() == [False, True, None]
    # Integer amounts are fine for a float64 request field.
    assert result["ratio"].type == pa.float64() and result["ratio"].to_pylist() == [2.5, None, None]

"""On-demand views: the decorator, the checked `compute` call, discovery and the registry round trip."""

from __future__ import annotations

import datetime as dt

import pytest

from hindsight import on_demand
from hindsight.on_demand import OnDemandError, OnDemandView, on_demand_feature_view
from hindsight.on_demand.fraud import transaction_context
from hindsight.registry_sync.model import Feature, OnDemandFeatureView, RequestField


def ratio(rows: dict[str, list]) -> dict[str, list]:
    return {"ratio": [None if a is None or not b else a / b for a, b in zip(rows["amount"], rows["mean"])]}


def declare(**overrides) -> OnDemandView:
    arguments = {
        "name": "amount_ratio",
        "feature_inputs": ["stats:mean"],
        "request_fields": {"amount": "float64"},
        "outputs": {"ratio": "float64"},
    }
    return on_demand_feature_view(**{**arguments, **overrides})(ratio)


def test_the_decorator_keeps_the_declaration_and_the_function() -> None:
    view = declare(description="amount over mean", owner="risk", tags=["x"])
    assert view.name == "amount_ratio"
    assert view.feature_inputs == ("stats:mean",)
    assert view.request_fields == {"amount": "float64"}
    assert view.outputs == {"ratio": "float64"}
    assert view.input_features == {"mean": "stats:mean"}
    assert view.input_names == ("mean", "amount")
    assert (view.description, view.owner, view.tags) == ("amount over mean", "risk", ("x",))
    # Calling the object calls the bare function.
    assert view({"amount": [4.0], "mean": [2.0]}) == {"ratio": [2.0]}


def test_compute_passes_only_declared_inputs_and_copes_with_nulls() -> None:
    seen = {}

    @on_demand_feature_view(name="spy", feature_inputs=["stats:mean"], request_fields={"amount": "float64"},
                            outputs={"ratio": "float64"})
    def spy(rows):
        seen.update(rows)
        return ratio(rows)

    result = spy.compute({"amount": [4.0, None, 3], "mean": [2.0, 1.0, None], "other": [1, 2, 3]})
    assert result == {"ratio": [2.0, None, None]}
    assert set(seen) == {"amount", "mean"}


def test_a_batch_of_zero_rows_is_fine() -> None:
    assert declare().compute({"amount": [], "mean": []}) == {"ratio": []}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"feature_inputs": ["a:x", "b:x"]}, r"'a:x' and 'b:x' share the name 'x'"),
        ({"feature_inputs": ["no_colon"]}, r"'no_colon' is not of the form 'view:feature'"),
        ({"feature_inputs": ["stats:amount"]}, r"request field 'amount' has the same name as feature input"),
        ({"outputs": {"ratio": "double"}}, r"output 'ratio' has type 'double'; expected one of bool, int32"),
        ({"request_fields": {"amount": "money"}}, r"request field 'amount' has type 'money'"),
        ({"outputs": {}}, r"declares no outputs"),
        ({"name": ""}, r"needs a non-empty name"),
    ],
)
def test_bad_declarations_are_refused_at_import_time(overrides, message) -> None:
    with pytest.raises(OnDemandError, match=message):
        declare(**overrides)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"amount": [1.0]}, r"missing input column\(s\) \['mean'\]"),
        ({"amount": [1.0, 2.0], "mean": [1.0]}, r"input columns differ in length"),
        ({"amount": ["1.0"], "mean": [1.0]}, r"request field 'amount' is declared float64 but holds '1.0' \(str\)"),
        ({"amount": [True], "mean": [1.0]}, r"holds True \(bool\)"),
    ],
)
def test_bad_inputs_are_named(columns, message) -> None:
    with pytest.raises(OnDemandError, match=message):
        declare().compute(columns)


def returning(value, outputs=None) -> OnDemandView:
    """A one-request-field view whose function returns `value`."""
    return on_demand_feature_view(name="fixed", request_fields={"n": "int64"}, outputs=outputs or {"ratio": "float64"})(
        lambda rows: value
    )


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        ({"ratio": [1.0], "extra": [1]}, r"undeclared \['extra'\]"),
        ({}, r"missing \['ratio'\]"),
        ({"ratio": [1.0, 2.0]}, r"output 'ratio' must be a list of 1 values, got a list of 2"),
        ({"ratio": (1.0,)}, r"must be a list of 1 values, got tuple"),
        ({"ratio": ["high"]}, r"output 'ratio' is declared float64 but holds 'high' \(str\)"),
        ([1.0], r"returned list; it must return a dict"),
    ],
)
def test_bad_outputs_are_named(returned, message) -> None:
    with pytest.raises(OnDemandError, match=message):
        returning(returned).compute({"n": [1]})


def test_output_types_accept_ints_for_floats_and_reject_datetimes_for_dates() -> None:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    good = {"f": [1, 2.5], "d": [now.date(), None], "t": [now, None], "b": [True, None]}
    outputs = {"f": "float64", "d": "date", "t": "timestamp", "b": "bool"}
    assert returning(good, outputs).compute({"n": [1, 2]}) == good
    with pytest.raises(OnDemandError, match=r"output 'd' is declared date but holds datetime"):
        returning({"d": [now]}, {"d": "date"}).compute({"n": [1]})
    with pytest.raises(OnDemandError, match=r"output 'i' is declared int64 but holds True \(bool\)"):
        returning({"i": [True]}, {"i": "int64"}).compute({"n": [1]})


def test_the_fraud_example_divides_by_the_mean_and_compares_countries() -> None:
    result = transaction_context.compute(
        {
            "amount_mean_30d": [40.0, 0.0, None, 10.0],
            "home_country": ["FR", "FR", "DE", None],
            "amount": [100.0, 5.0, 7.0, 20.0],
            "country": ["FR", "DE", "DE", "FR"],
        }
    )
    assert result == {
        "amount_vs_user_mean_30d": [2.5, None, None, 2.0],
        "is_foreign_country": [False, True, False, None],
    }


def test_load_views_finds_the_package_examples() -> None:
    views = on_demand.load_views()
    assert views["transaction_context"] is transaction_context
    assert all(isinstance(v, OnDemandView) for v in views.values())


def test_to_registry_and_back_gives_the_same_view() -> None:
    entry = on_demand.to_registry(transaction_context)
    assert entry == OnDemandFeatureView(
        name="transaction_context",
        feature_inputs=("user_transaction_aggregates:amount_mean_30d", "user_profile:home_country"),
        request_fields=(RequestField("amount", "float64"), RequestField("country", "string")),
        features=(Feature("amount_vs_user_mean_30d", "float64"), Feature("is_foreign_country", "bool")),
        function="hindsight.on_demand.fraud:transaction_context",
        description=transaction_context.description,
        owner="fraud",
        tags=("fraud", "demo"),
    )
    assert on_demand.from_registry(entry) is transaction_context


def test_from_registry_wraps_a_bare_function_and_names_an_unimportable_one() -> None:
    entry = OnDemandFeatureView(
        name="wrapped",
        feature_inputs=("stats:mean",),
        request_fields=(RequestField("amount", "float64"),),
        features=(Feature("ratio", "float64"),),
        function=f"{__name__}:ratio",
    )
    view = on_demand.from_registry(entry)
    assert view.compute({"amount": [3.0], "mean": [1.5]}) == {"ratio": [2.0]}
    missing = OnDemandFeatureView("gone", (), (), (Feature("x", "bool"),), function="hindsight.on_demand.fraud:nope")
    with pytest.raises(OnDemandError, match=r"cannot import its function 'hindsight.on_demand.fraud:nope'"):
        on_demand.from_registry(missing)


def test_a_view_defined_inside_a_function_cannot_go_to_the_registry() -> None:
    with pytest.raises(OnDemandError, match=r"defined at a module's top level"):
        on_demand.to_registry(_local_view())


def _local_view() -> OnDemandView:
    @on_demand_feature_view(name="local", outputs={"x": "bool"})
    def local(rows):
        return {"x": []}

    return local

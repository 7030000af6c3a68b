"""Feature selection and planning: references checked against the registry, output names, on-demand inputs."""

from __future__ import annotations

import pytest

from hindsight import on_demand
from hindsight.on_demand.fraud import transaction_context
from hindsight.registry_sync.model import Entity, Feature, FeatureRef, FeatureService, FeatureView, Registry
from hindsight.training_sets import TrainingSetError
from hindsight.training_sets.plan import plan_training_set
from hindsight.training_sets.selection import Selected, select_features


def view(name: str, keys: tuple[str, ...], features: list[str], created: str | None = None) -> FeatureView:
    return FeatureView(
        name, "batch", ("e",), keys, "event_timestamp", created, None, False, f"/store/{name}",
        tuple(Feature(f, "float64") for f in features),
    )


REGISTRY = Registry(
    "test",
    entities=(Entity("user", ("user_id",)), Entity("merchant", ("merchant_id",))),
    feature_views=(
        view("user_transaction_aggregates", ("user_id",), ["txn_count_1d", "amount_mean_30d"]),
        view("user_profile", ("user_id",), ["home_country", "credit_limit"], created="created_timestamp"),
        view("merchant_risk", ("merchant_id",), ["txn_count_1d", "fraud_rate_7d"]),
    ),
    on_demand_views=(on_demand.to_registry(transaction_context),),
    feature_services=(
        FeatureService(
            "fraud",
            (
                FeatureRef("user_transaction_aggregates", "txn_count_1d"),
                FeatureRef("merchant_risk", "txn_count_1d", alias="merchant_txns"),
                FeatureRef("user_profile", "*"),
                FeatureRef("transaction_context", "is_foreign_country"),
            ),
        ),
    ),
)


def outputs(selected: list[Selected]) -> list[tuple[str, str]]:
    return [(s.ref, s.output) for s in selected]


def test_features_keep_request_order_and_wildcards_expand_in_declared_order() -> None:
    selected = select_features(REGISTRY, features=["user_profile:*", "user_transaction_aggregates:amount_mean_30d"])
    assert outputs(selected) == [
        ("user_profile:home_country", "home_country"),
        ("user_profile:credit_limit", "credit_limit"),
        ("user_transaction_aggregates:amount_mean_30d", "amount_mean_30d"),
    ]


def test_a_comma_separated_string_and_repeats_are_accepted() -> None:
    selected = select_features(REGISTRY, features="user_profile:credit_limit, user_profile:*")
    assert outputs(selected) == [
        ("user_profile:credit_limit", "credit_limit"),
        ("user_profile:home_country", "home_country"),
    ]


def test_only_clashing_names_get_the_view_prefix() -> None:
    selected = select_features(
        REGISTRY, features=["user_transaction_aggregates:txn_count_1d", "merchant_risk:*"]
    )
    assert [s.output for s in selected] == [
        "user_transaction_aggregates__txn_count_1d",
        "merchant_risk__txn_count_1d",
        "fraud_rate_7d",
    ]


def test_a_service_gives_aliases_and_marks_its_features_as_not_named_by_the_caller() -> None:
    selected = select_features(REGISTRY, service="fraud")
    assert outputs(selected) == [
        ("user_transaction_aggregates:txn_count_1d", "txn_count_1d"),
        ("merchant_risk:txn_count_1d", "merchant_txns"),
        ("user_profile:home_country", "home_country"),
        ("user_profile:credit_limit", "credit_limit"),
        ("transaction_context:is_foreign_country", "is_foreign_country"),
    ]
    assert not any(s.explicit for s in selected)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"features": ["user_profle:home_country"]}, r"unknown feature view 'user_profle' \(did you mean 'user_profile'\?\)"),
        ({"features": ["user_profile:home_county"]}, r"view 'user_profile' has no feature 'home_county' \(did you mean 'home_country'\?\)"),
        ({"features": ["user_profile"]}, r"'user_profile' is not of the form 'view:feature' or 'view:\*'"),
        ({"features": []}, r"the feature list is empty"),
        ({}, r"the feature list is empty"),
        ({"features": ["user_profile:*"], "service": "fraud"}, r"pass either service= or features=, not both"),
        ({"service": "frad"}, r"unknown feature service 'frad' \(did you mean 'fraud'\?\)"),
        ({"features": ["nothing_alike:x"]}, r"unknown feature view 'nothing_alike' \(known: merchant_risk, transaction_context, "),
    ],
)
def test_bad_references_name_the_problem_and_near_names(kwargs, message) -> None:
    with pytest.raises(TrainingSetError, match=message):
        select_features(REGISTRY, **kwargs)


def test_two_outputs_of_one_name_are_refused() -> None:
    clash = Registry(
        "test",
        feature_views=REGISTRY.feature_views,
        feature_services=(
            FeatureService("s", (FeatureRef("user_profile", "home_country", alias="x"),
                                 FeatureRef("merchant_risk", "fraud_rate_7d", alias="x"))),
        ),
    )
    with pytest.raises(TrainingSetError, match=r"would both be output as \['x'\]; give them distinct aliases"):
        select_features(clash, service="s")


def test_on_demand_inputs_are_read_under_internal_names_unless_requested() -> None:
    selected = select_features(
        REGISTRY, features=["transaction_context:*", "user_profile:home_country", "merchant_risk:fraud_rate_7d"]
    )
    plan = plan_training_set(REGISTRY, selected)
    assert list(plan.views) == ["user_transaction_aggregates", "user_profile", "merchant_risk"]
    assert plan.reads == {
        "user_transaction_aggregates": [("amount_mean_30d", "__hs_input__user_transaction_aggregates__amount_mean_30d")],
        "user_profile": [("home_country", "home_country")],
        "merchant_risk": [("fraud_rate_7d", "fraud_rate_7d")],
    }
    (step,) = plan.on_demand
    assert step.view is transaction_context
    assert step.inputs == {
        "amount_mean_30d": "__hs_input__user_transaction_aggregates__amount_mean_30d",
        "home_country": "home_country",
    }
    assert step.outputs == {"amount_vs_user_mean_30d": "amount_vs_user_mean_30d", "is_foreign_country": "is_foreign_country"}
    assert plan.request_fields() == {"amount": "transaction_context", "country": "transaction_context"}
    assert plan.key_views() == {"user_id": ["user_transaction_aggregates", "user_profile"], "merchant_id": ["merchant_risk"]}
    assert plan.columns_needed("user_profile") == ["user_id", "event_timestamp", "created_timestamp", "home_country"]


def test_an_on_demand_input_from_an_unknown_view_is_named() -> None:
    broken = Registry(
        "test",
        feature_views=REGISTRY.feature_views[1:],  # no user_transaction_aggregates
        on_demand_views=REGISTRY.on_demand_views,
    )
    selected = select_features(broken, features=["transaction_context:is_foreign_country"])
    with pytest.raises(TrainingSetError, match=r"reads user_transaction_aggregates:amount_mean_30d, but 'user_transaction_aggregates' is not a feature view"):
        plan_training_set(broken, selected)

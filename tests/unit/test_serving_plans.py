"""Read plans: output naming, what is read, and the checks made when a plan is built."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hindsight.registry_sync.model import FeatureRef, FeatureService
from hindsight.serving.errors import ApiError
from hindsight.serving.plans import PlanBuilder, output_names, parse_feature_ref

refs_without_aliases = st.lists(
    st.builds(FeatureRef, st.sampled_from(["users", "merchants", "devices"]), st.sampled_from(["count", "mean", "x"])),
    unique=True,
    max_size=9,
)


@given(refs_without_aliases)
def test_output_names_are_unique_and_readable(refs):
    names = output_names(refs)
    assert len(set(names)) == len(names)
    for ref, name in zip(refs, names):
        clashes = sum(r.feature == ref.feature for r in refs)
        # Brute force: a bare name when no other ref shares the feature name, else view__feature.
        assert name == (ref.feature if clashes == 1 else f"{ref.view}__{ref.feature}")


def test_aliases_win_and_can_resolve_clashes():
    refs = [FeatureRef("users", "count"), FeatureRef("merchants", "count", "merchant_count")]
    assert output_names(refs) == ["count", "merchant_count"]


@pytest.mark.parametrize("text", ["a", "a:b:c", ":b", "a:", 3, None])
def test_bad_feature_refs(text):
    with pytest.raises(ApiError) as raised:
        parse_feature_ref(text)
    assert raised.value.code == "invalid_feature_ref"


def test_service_plan_reads_what_outputs_and_on_demand_inputs_need(serving_registry, serving_on_demand):
    plan = PlanBuilder(serving_registry, {"transaction_context": serving_on_demand}).for_service(
        serving_registry.service("fraud_detection")
    )
    assert plan.store_features == {
        "user_transaction_aggregates": ["amount_mean_30d", "txn_count_7d"],
        "merchant_risk": ["txn_count_7d", "fraud_rate_30d"],
        "user_profile": ["home_country"],
    }
    assert [k.name for k in plan.join_keys] == ["user_id", "merchant_id"]
    assert [(f.name, f.dtype) for f in plan.request_fields] == [("amount", "float64"), ("country", "string")]
    assert [step.view.name for step in plan.on_demand] == ["transaction_context"]
    assert plan.entities == ("user", "merchant")


def test_on_demand_only_request_reads_its_inputs(serving_registry, serving_on_demand):
    plan = PlanBuilder(serving_registry, {"transaction_context": serving_on_demand}).for_features(["transaction_context:*"])
    assert plan.store_features == {"user_transaction_aggregates": ["amount_mean_30d"], "user_profile": ["home_country"]}
    assert [c.name for c in plan.outputs] == ["amount_vs_user_mean_30d", "is_foreign_country"]


def test_an_alias_taking_a_feature_name_prefixes_the_feature(serving_registry):
    service = FeatureService("taken", (
        FeatureRef("user_profile", "home_country"),
        FeatureRef("user_profile", "account_tier", "home_country"),
    ))
    plan = PlanBuilder(serving_registry, {}).for_service(service)
    assert [c.name for c in plan.outputs] == ["user_profile__home_country", "home_country"]


def test_two_features_under_one_alias_are_refused(serving_registry):
    service = FeatureService("clash", (
        FeatureRef("user_profile", "home_country", "x"),
        FeatureRef("user_profile", "account_tier", "x"),
    ))
    with pytest.raises(ApiError) as raised:
        PlanBuilder(serving_registry, {}).for_service(service)
    assert raised.value.code == "ambiguous_feature_names"
    assert "'user_profile:home_country' and 'user_profile:account_tier'" in raised.value.message


def test_registered_on_demand_view_without_code_is_reported(serving_registry):
    with pytest.raises(ApiError) as raised:
        PlanBuilder(serving_registry, {}).for_features(["transaction_context:is_foreign_country"])
    assert raised.value.code == "on_demand_view_unavailable"


def test_services_are_planned_once_at_app_start(make_serving_app, monkeypatch):
    calls = []
    original = PlanBuilder.for_service

    def counting(self, service):
        calls.append(service.name)
        return original(self, service)

    monkeypatch.setattr(PlanBuilder, "for_service", counting)
    client = make_serving_app().test_client()
    assert sorted(calls) == ["fraud_detection", "merchant_catalog", "user_basics"]
    body = {"feature_service": "user_basics", "entities": {"user_id": 12}}
    for _ in range(3):
        assert client.post("/v1/features", json=body).status_code == 200
    assert len(calls) == 3  # no planning per request

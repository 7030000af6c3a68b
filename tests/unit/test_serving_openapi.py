"""The OpenAPI document: structurally valid 3.1, every route listed, real responses match it."""

from __future__ import annotations

import re

import jsonschema
import pytest
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture
def document(serving_client):
    response = serving_client.get("/openapi.json")
    assert response.status_code == 200
    return response.get_json()


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_document_is_structurally_valid_openapi_31(document):
    assert re.fullmatch(r"3\.1\.\d+", document["openapi"])
    assert document["info"]["title"] and document["info"]["version"]
    schemas = document["components"]["schemas"]
    for schema in schemas.values():
        jsonschema.Draft202012Validator.check_schema(schema)
    for ref in _refs(document):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    operation_ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/")
        for method, operation in item.items():
            assert method in HTTP_METHODS
            operation_ids.append(operation["operationId"])
            assert operation["responses"], f"{method} {path} has no responses"
            for status, response in operation["responses"].items():
                assert re.fullmatch(r"[1-5]\d\d", status) and response["description"]
            for parameter in operation.get("parameters", []):
                assert parameter["in"] == "path" and f"{{{parameter['name']}}}" in path
            for placeholder in re.findall(r"\{(\w+)\}", path):
                assert placeholder in {p["name"] for p in operation.get("parameters", [])}
    assert len(operation_ids) == len(set(operation_ids))


def test_document_lists_every_route_the_app_registers(serving_client, document):
    app = serving_client.application
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(path, m.lower()) for m in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routes == documented


def _validator(document, name):
    registry = Registry().with_resource("urn:openapi", Resource(contents=document, specification=DRAFT202012))
    return jsonschema.Draft202012Validator({"$ref": f"urn:openapi#/components/schemas/{name}"}, registry=registry)


def _response_schema(document, path, method, status):
    schema = document["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]
    registry = Registry().with_resource("urn:openapi", Resource(contents=document, specification=DRAFT202012))
    rebased = _rebase(schema)
    return jsonschema.Draft202012Validator(rebased, registry=registry)


def _rebase(node):
    if isinstance(node, dict):
        return {k: ("urn:openapi" + v if k == "$ref" else _rebase(v)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rebase(v) for v in node]
    return node


FRAUD = {
    "feature_service": "fraud_detection",
    "entities": {"user_id": 12, "merchant_id": 7},
    "request_context": {"amount": 99.5, "country": "FR"},
}


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("post", "/v1/features", FRAUD, "200"),
        ("post", "/v1/features", {**FRAUD, "include_metadata": True}, "200"),
        ("post", "/v1/features", {**FRAUD, "entities": [FRAUD["entities"]] * 2, "include_metadata": True}, "200"),
        ("post", "/v1/features", {**FRAUD, "feature_service": "nope"}, "404"),
        ("post", "/v1/features", {**FRAUD, "entities": {}}, "400"),
        ("get", "/v1/feature-services", None, "200"),
        ("get", "/v1/feature-services/fraud_detection", None, "200"),
        ("get", "/v1/feature-services/merchant_catalog", None, "200"),
        ("get", "/v1/feature-services/nope", None, "404"),
        ("get", "/healthz", None, "200"),
        ("get", "/readyz", None, "200"),
    ],
)
def test_responses_match_the_documented_schemas(serving_client, document, method, path, body, status):
    response = getattr(serving_client, method)(path, json=body) if body else getattr(serving_client, method)(path)
    assert str(response.status_code) == status
    template = "/v1/feature-services/{name}" if path.count("/") == 3 and "feature-services" in path else path
    _response_schema(document, template, method, status).validate(response.get_json())


def test_documented_request_schema_accepts_good_and_rejects_bad_bodies(document):
    validator = _validator(document, "FeatureRequest")
    validator.validate(FRAUD)
    validator.validate({"features": ["user_profile:*"], "entities": [{"user_id": 1}], "latency_budget_ms": 5})
    for bad in ({**FRAUD, "features": ["a:b"]}, {"entities": {}}, {**FRAUD, "extra": 1}):
        assert not validator.is_valid(bad)


def test_service_names_are_documented(document):
    description = document["components"]["schemas"]["FeatureRequest"]["properties"]["feature_service"]["description"]
    assert "fraud_detection" in description

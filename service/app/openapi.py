"""The published API schema: the contract's request type with a worked example, although the
handler reads the body itself (so malformed JSON is a 422 that names the problem, not FastAPI's
generic one)."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from models import PlanRequest

# A small worked example: two regions, a running premium job, a job whose data sits in Europe, a quota.
EXAMPLE_REQUEST: dict[str, Any] = {
    "epoch_s": 300,
    "fleet": {
        "regions": [{"name": "us-east", "storage_gbps": 2.0}, {"name": "eu-west", "storage_gbps": 1.0}],
        "links": [{"a": "us-east", "b": "eu-west", "gbps": 0.5}],
        "clusters": [
            {"name": "use-a", "region": "us-east",
             "node_groups": [{"prefix": "use-a-h100-", "count": 2, "accelerator": "H100", "devices": 8}]},
            {"name": "euw-a", "region": "eu-west",
             "node_groups": [{"prefix": "euw-a-v100-", "count": 2, "accelerator": "V100", "devices": 4}]},
        ],
        "down_nodes": [],
    },
    "jobs": [
        {"id": "llm-pretrain", "tenant": "vc-lm", "tier": "premium", "replicas": {"min": 4, "max": 8},
         "speed": {"H100": 1.0}, "data_region": "us-east", "checkpoint_gb": 120,
         "current": {"cluster": "use-a", "accelerator": "H100", "nodes": {"use-a-h100-0": 4}}},
        {"id": "vision-ft", "tenant": "vc-vision", "tier": "standard", "replicas": {"min": 2, "max": 4},
         "speed": {"H100": 1.0, "V100": 0.3}, "data_region": "eu-west", "checkpoint_gb": 8},
        {"id": "speech-sweep", "tenant": "vc-speech", "tier": "basic", "replicas": {"min": 1, "max": 1},
         "speed": {"V100": 0.3}, "checkpoint_gb": 0.5},
    ],
    "quotas": [{"tenant": "vc-vision", "tier": "standard", "devices": 8}],
    "policy": {"time_limit_s": 2, "deterministic": True},
}


def request_body_spec() -> dict[str, Any]:
    return {
        "required": True,
        "description": "A plan request of contract v1 (placement-v1.md).",
        "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/PlanRequest"},
            "examples": {"two-regions": {"summary": "two regions, a running premium job, a quota",
                                         "value": EXAMPLE_REQUEST}},
        }},
    }


def install(app: FastAPI, bearer: bool = False) -> None:
    """Replace `app.openapi` with one that also publishes PlanRequest and its parts under components, and,
    when the service requires a token, the bearer scheme (Swagger UI's Authorize button)."""

    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        req = PlanRequest.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
        defs = req.pop("$defs", {})
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, d in {**defs, "PlanRequest": req}.items():
            if name in components and components[name] != d:
                raise RuntimeError(f"OpenAPI component {name!r} differs between request and response schemas")
            components[name] = copy.deepcopy(d)
        if bearer:
            schema["components"]["securitySchemes"] = {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "the service's API token (MERIDIAN_API_TOKEN or --api-token-file)"}}
            schema["security"] = [{"bearer": []}]
            for path in ("/healthz", "/readyz"):
                for op in schema["paths"].get(path, {}).values():
                    op["security"] = []
        app.openapi_schema = schema
        return schema

    app.openapi = build  # type: ignore[method-assign]

"""The OpenAPI document: FastAPI's, plus the request bodies the prediction routes parse themselves (they read
the raw bytes for speed, so FastAPI cannot see their body models)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from hvbuyer_serving.schemas import BATCH_EXAMPLE, COLUMNS_EXAMPLE, BatchRequest, PredictRequest

SELF_PARSED: tuple[type[BaseModel], ...] = (PredictRequest, BatchRequest)


def request_body(model: type[BaseModel], example: dict[str, Any]) -> dict[str, Any]:
    """``openapi_extra`` of a route that parses ``model`` from the raw body itself."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    content = {"application/json": {"schema": schema, "example": example}}
    return {"requestBody": {"required": True, "content": content}}


def batch_request_body() -> dict[str, Any]:
    """``openapi_extra`` of ``/predict/batch``: rows or columns as JSON, or an Arrow IPC stream."""
    extra = request_body(BatchRequest, BATCH_EXAMPLE)
    content = extra["requestBody"]["content"]
    content["application/json"]["examples"] = {
        "rows": {"value": BATCH_EXAMPLE},
        "columns": {"value": COLUMNS_EXAMPLE},
    }
    del content["application/json"]["example"]
    content["application/vnd.apache.arrow.stream"] = {
        "schema": {"type": "string", "format": "binary", "description": "Arrow IPC stream, one column per field"}
    }
    return extra


def install(app: FastAPI) -> None:
    """Serve FastAPI's document with the schemas of ``SELF_PARSED`` added (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in SELF_PARSED:
            definition = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(definition.pop("$defs", {}))
            components[model.__name__] = definition
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

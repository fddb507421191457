"""All routers of the API, in the order the OpenAPI document lists them."""

from __future__ import annotations

from fastapi import APIRouter

from hvbuyer_serving.api.routes import admin, customers, docs, health, metrics, model, plots, predict

ROUTERS: tuple[APIRouter, ...] = tuple(
    m.router for m in (predict, customers, model, health, metrics, plots, admin, docs)
)

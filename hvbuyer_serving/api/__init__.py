"""The HTTP API: dependencies (``deps``), error bodies (``errors``), the OpenAPI document (``openapi``) and the
routers by concern (``routes``), gathered by ``main.api_router``."""

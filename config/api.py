"""The REST API: one NinjaAPI mounting each app's router. OpenAPI at /api/openapi.json, docs at /api/docs."""

from ninja import NinjaAPI

api = NinjaAPI(title="Smileloop API", version="1", urls_namespace="api")

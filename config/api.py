"""The REST API: one NinjaAPI mounting each app's router. OpenAPI at /api/openapi.json, docs at /api/docs.

Every operation needs `Authorization: Bearer <token>` (`smileloop token create --user USERNAME`); every
error uses one shape (smileloop.core.api); every write needs an Idempotency-Key (smileloop.core.idempotency).
"""

from smileloop.clinics.api import TokenAuth
from smileloop.core.api import SmileloopAPI
from smileloop.customers.api import router as customers_router
from smileloop.visits.api import router as visits_router

api = SmileloopAPI(
    title="Smileloop API",
    version="1",
    urls_namespace="api",
    auth=TokenAuth(),
    description="Ingestion API for a practice-management system or POS. Money is integer fen (`*_fen`); "
                "times are ISO 8601, naive ones meaning Asia/Shanghai.",
)
api.add_router("/customers", customers_router)
api.add_router("/", visits_router)

"""The REST API: one NinjaAPI mounting each app's router. OpenAPI at /api/openapi.json, docs at /api/docs.

Every operation needs `Authorization: Bearer <token>` (`smileloop token create --user USERNAME`); every
error uses one shape (smileloop.core.api); every write needs an Idempotency-Key (smileloop.core.idempotency).
"""

from smileloop.checkout.api import router as checkout_router  # checkout (issue 3 §7)
from smileloop.clinics.api import TokenAuth
from smileloop.core.api import SmileloopAPI
from smileloop.customers.api import router as customers_router
from smileloop.followups.api import router as followups_router
from smileloop.giftcards.api import router as giftcards_router  # gift cards and vouchers (issue 3 §5)
from smileloop.lifecycle.api import router as lifecycle_router
from smileloop.loyalty.api import router as loyalty_router  # loyalty app (issue 3)
from smileloop.membership.api import router as membership_router  # membership app (issue 3)
from smileloop.segments.api import router as segments_router
from smileloop.surveys.api import router as surveys_router
from smileloop.tagging.api import router as tagging_router
from smileloop.visits.api import router as visits_router

api = SmileloopAPI(
    title="Smileloop API",
    version="1",
    urls_namespace="api",
    auth=TokenAuth(),
    description="Ingestion API for a practice-management system or POS. Money is integer fen (`*_fen`); "
                "times are ISO 8601, naive ones meaning Asia/Shanghai.\n\n"
                "Every error, whatever its status, is one JSON shape: `{\"code\", \"message\", \"errors\": "
                "[{\"field\", \"message\", \"value\"}]}`, each `field` a path into the request "
                "(`body.lines[0].item_code`, `query.limit`, `path.customer_id`, `header.Idempotency-Key`). "
                "A body is one JSON object sent with `Content-Type: application/json` (else a 415); a field the "
                "body does not have, or a value of another JSON type (`\"5000\"` for an integer), is a 422 naming "
                "it, and nothing is written. "
                "Every write needs an `Idempotency-Key` header (at most 255 characters): a retry with the same key "
                "and body replays the first answer, status and body (with `Idempotent-Replayed: true`); the same "
                "key with another body is a 409 `idempotency_key_reused`. A 503 `busy` (with `Retry-After`) wrote "
                "nothing: retry it with the same key. Lists that page take `limit` (at most 200) and `offset` and "
                "answer `count`, `limit`, `offset` and `items`.",
)
api.add_router("/customers", customers_router)
api.add_router("/", visits_router)
api.add_router("/membership", membership_router)  # membership app (issue 3)
api.add_router("/loyalty", loyalty_router)  # loyalty app (issue 3)
api.add_router("/checkout", checkout_router)  # checkout (issue 3 §7)
api.add_router("/giftcards", giftcards_router)  # gift cards and vouchers (issue 3 §5)
api.add_router("/tags", tagging_router)  # issue 4 §2
api.add_router("/segments", segments_router)  # issue 4 §3
api.add_router("/lifecycle", lifecycle_router)  # issue 4 §4
api.add_router("/followups", followups_router)  # issue 4 §5
api.add_router("/surveys", surveys_router)  # issue 4 §6

"""Follow-ups API (mounted at /api/followups)."""

from ninja import Router

router = Router(tags=["followups"])

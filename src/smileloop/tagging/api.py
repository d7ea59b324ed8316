"""Tags API (mounted at /api/tagging)."""

from ninja import Router

router = Router(tags=["tagging"])

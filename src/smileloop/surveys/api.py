"""Satisfaction surveys API (mounted at /api/surveys)."""

from ninja import Router

router = Router(tags=["surveys"])

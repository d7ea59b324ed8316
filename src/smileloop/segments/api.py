"""Segments API (mounted at /api/segments)."""

from ninja import Router

router = Router(tags=["segments"])

"""Lifecycle stages API (mounted at /api/lifecycle)."""

from ninja import Router

router = Router(tags=["lifecycle"])

"""Satisfaction surveys after each completed visit: token link, score 0–10, tags, comment, NPS."""

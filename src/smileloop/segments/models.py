"""Segments: validated rule trees over patient fields, tags, consents and aggregates, compiled to one SQL query."""

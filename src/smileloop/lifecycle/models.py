"""Lifecycle stages derived from events (lead → … → referrer, dormant, lost) and the funnel."""

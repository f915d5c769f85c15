"""Timed execution of callbacks (APScheduler)."""

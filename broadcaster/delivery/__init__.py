"""Delivery: dispatch, scheduling, the worker loop (sending), the sweep, Celery tasks and app,
rate limits, provider accounts and callbacks, the broker (embedded or not) and its health."""

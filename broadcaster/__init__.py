"""Broadcaster: emergency and time-sensitive notifications for school districts."""

__version__ = "0.1.0"

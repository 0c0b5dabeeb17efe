"""LoyJoy chat events into the site owner's BigQuery: validated, privacy-safe, in real time."""

__version__ = "0.1.0"

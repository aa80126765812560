"""Runnable examples: stand-ins for the data a user brings."""

"""Exceptions midalign raises for problems a user can fix (bad input, missing resources)."""


class MidalignError(Exception):
    """Base class of every error midalign raises on purpose; the message says what to do."""

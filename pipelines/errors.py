"""Errors the user can fix: the message names the input, the problem and the fix (exit code 2)."""


class UsageError(ValueError):
    """Bad input to a command (data location, approval target, schedule, publish settings)."""

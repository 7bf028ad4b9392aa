"""Errors the command line turns into one clear line and exit code 2."""


class UsageError(Exception):
    """A mistake in how a command was called or what it was given (exit code 2)."""

"""Errors the command line turns into one clear line: exit code 2 for a mistake, 1 for a result it could not deliver."""


class UsageError(Exception):
    """A mistake in how a command was called or what it was given (exit code 2)."""


class OutputError(Exception):
    """A result that could not be written where the user asked (a full disk, a closed standard output):
    exit code 1, one line, never an internal error."""

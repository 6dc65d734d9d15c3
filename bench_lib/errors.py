"""The one error type that means "the user asked for something invalid" (exit code 2 in the CLI).

Any stage may raise it for input that came from the user (a flag, a selector, a file name); every other
exception is a failure of the work or a bug, reported with a short traceback and exit code 1.
"""


class ArgumentError(ValueError):
    """Bad input from the user: printed as one line naming the flag or field and the accepted range."""

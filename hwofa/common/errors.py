"""The one exception type every stage raises for bad user input (CLI maps it to exit 2)."""


class UserError(Exception):
    """Bad input from the user: a flag, a file, a budget. Message is one clear paragraph."""

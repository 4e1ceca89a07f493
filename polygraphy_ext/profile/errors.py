"""The one exception type of the profile package: a user-facing problem with an input file or an option."""


class ProfileError(ValueError):
    """Bad input. The message is one line, names the file, and is shown to the user as-is (no traceback)."""

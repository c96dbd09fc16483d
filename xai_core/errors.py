"""The one exception type for failures a user can cause (a wrong file, data that does not fit)."""


class XaiError(ValueError):
    """A problem the user can act on. The message says what was wrong and what to do."""

"""The one exception type a user sees: the CLI prints its message as a single line."""


class HarnessError(Exception):
    """A user-facing error: bad input, bad config, refused operation. Message says what to do."""

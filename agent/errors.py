"""The one kind of error a user can fix: every part raises a subclass, and the CLI's root prints it as
one line (`error: ...`, exit 1), so no command catches its part's errors itself."""


class UserError(Exception):
    """Bad input, a missing login, an unusable store or pod: the message says what is wrong and what
    to do instead, in one line."""

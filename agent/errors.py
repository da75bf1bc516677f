"""The one kind of error a user can fix: every part raises a subclass, and the CLI's root prints it as
one line (`Error: ...`, exit 1). Commands let it through; `validate` alone catches a ConfigError, to
print each of its problems on a line of its own."""


class UserError(Exception):
    """Bad input, a missing login, an unusable store or pod: the message says what is wrong and what
    to do instead, in one line."""

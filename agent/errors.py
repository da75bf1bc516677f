"""The one kind of error a user can fix: every part raises a subclass, and the CLI's root prints it as
one line (`Error: ...`, exit 1). Commands let it through; `validate` alone catches a ConfigError, to
print each of its problems on a line of its own."""


class UserError(Exception):
    """Bad input, a missing login, an unusable store or pod: the message says what is wrong and what
    to do instead, in one line."""


def first_line(error: BaseException) -> str:
    """The first line of an error's message, or its type's name when it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def one_line(error: BaseException) -> str:
    """`Type: first line of the message`, the way a launch records why it failed."""
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}".rstrip(": ")

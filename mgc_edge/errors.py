"""The one base class for errors a user can cause; the CLI turns them into one sentence and exit code 2."""


class UserError(ValueError):
    """Bad input from the user (path, file, option); the message is one clear sentence."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, at most `limit` characters (its type's name when it has no
    message): what a one-sentence error or a log line quotes of a library's multi-line error."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__

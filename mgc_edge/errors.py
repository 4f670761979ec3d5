"""The one base class for errors a user can cause; the CLI turns them into one sentence and exit code 2."""

from mgc_edge import __version__

# How to get the `[train]` extra, in words that work: mgc-edge is installed from a checkout or from its wheel
# (`make wheel`), never from the package index, where `mgc-edge[train]` names no published package.
TRAIN_INSTALL = (
    "pip install '.[train]' in a checkout of mgc-edge, or "
    f"pip install 'mgc_edge-{__version__}-py3-none-any.whl[train]' in the folder of its wheel"
)


class UserError(ValueError):
    """Bad input from the user (path, file, option); the message is one clear sentence."""


def first_line(exc: BaseException, limit: int = 300) -> str:
    """The first line of an exception's message, at most `limit` characters (its type's name when it has no
    message): what a one-sentence error or a log line quotes of a library's multi-line error."""
    text = str(exc).strip()
    return text.splitlines()[0][:limit] if text else type(exc).__name__

"""The one base class for errors a user can cause; the CLI turns them into one sentence and exit code 2."""


class UserError(ValueError):
    """Bad input from the user (path, file, option); the message is one clear sentence."""

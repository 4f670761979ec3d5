"""Which source texts are stream URLs, and the one redactor of the package: every message, log line and
status that may hold a URL goes through `redact_url` (passwords, tokens and other secret query values)."""

from __future__ import annotations

import re

URL_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")


# The password runs to the LAST @ before the path, as FFmpeg reads it: a password may hold @ and :.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^/?#\s]*)@")


# Query parameters named like a secret, also with a prefix: access_token, api_key, X-Amz-Signature.
_SECRET_QUERY = re.compile(
    r"(?i)([?&][\w.-]*(?:password|passwd|pwd|pw|pass|token|key|secret|auth|signature|sig|credential)=)[^&#\s]*"
)


def redact_url(text: str) -> str:
    """`text` with the password of every URL in it masked (`rtsp://user:***@host`), and secret-looking
    query parameters too; use it on every message that may hold a stream URL."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))
    return _SECRET_QUERY.sub(r"\1***", text)


def is_url(source: str) -> bool:
    scheme, sep, _ = source.partition("://")
    return bool(sep) and scheme.lower() in URL_SCHEMES

"""Why a stream did not open, where OpenCV only says that it did not: one HTTP GET, or one RTSP DESCRIBE of our
own over a socket, with the URL's user and password, and what the server answered, in a few words ("the server
answered HTTP 401 Unauthorized (check the user and password)", "authentication refused (check the user and
password)", "stream path not found (check the path)", "connection refused by HOST:PORT", "no answer from
HOST:PORT within 3 s"). Never a password in what it returns; never an exception out of it. stdlib only."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request

_REFUSALS = {401: "check the user and password", 403: "the account may not view it", 404: "check the path"}


def why_not_open(target: int | str, timeout: float) -> str | None:
    """What the server of an HTTP(S) or RTSP URL answered, in a few words, where that says why the stream did
    not open; None where it says nothing more (another scheme, a 2xx answer) or the probe itself failed."""
    if not isinstance(target, str):
        return None
    try:
        scheme = urllib.parse.urlsplit(target).scheme.lower()
        if scheme in ("http", "https"):
            answer = http_refusal(target, timeout)
            return f"the server answered {answer}" if answer else None
        if scheme == "rtsp":
            return rtsp_refusal(target, timeout)
    except Exception:  # noqa: BLE001 (a malformed URL, an odd server: the caller's own sentence stands)
        return None
    return None


def http_refusal(target: str, timeout: float) -> str | None:
    """What an HTTP(S) stream's server answered, where it refused with an error status ("HTTP 401 Unauthorized
    (check the user and password)"); None for anything else (no answer, a 2xx, a URL urllib cannot take)."""
    parts = urllib.parse.urlsplit(target)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{parts.port}" if parts.port else ""
    request = urllib.request.Request(urllib.parse.urlunsplit(parts._replace(netloc=netloc)))
    if parts.username is not None:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError as exc:
        hint = _REFUSALS.get(exc.code)
        return f"HTTP {exc.code} {exc.reason}" + (f" ({hint})" if hint else "")
    except Exception:  # noqa: BLE001 (no answer, TLS, a URL urllib refuses: OpenCV's sentence stands)
        return None


def rtsp_refusal(target: str, timeout: float) -> str | None:
    """One RTSP DESCRIBE of the URL (again with Basic or Digest credentials where the server asks for them):
    what the camera answered where it refused, or that nothing listens or answers; None where it accepts."""
    parts = urllib.parse.urlsplit(target)
    host, port = parts.hostname or "", parts.port or 554
    where = f"{host}:{port}"
    clean = urllib.parse.urlunsplit(
        parts._replace(netloc=f"{host}:{port}" if ":" not in host else f"[{host}]:{port}")
    )
    user = urllib.parse.unquote(parts.username) if parts.username is not None else None
    password = urllib.parse.unquote(parts.password or "")
    try:
        code, headers = _describe(host, port, clean, None, timeout)
        if code == 401 and user is not None:
            auth = _authorization(headers.get("www-authenticate", ""), user, password, clean)
            if auth is not None:
                code, headers = _describe(host, port, clean, auth, timeout)
    except ConnectionRefusedError:
        return f"connection refused by {where} (is the camera on, and is that its RTSP port?)"
    except socket.gaierror:
        return f"host {host} not found"
    except TimeoutError:
        return f"no answer from {where} within {timeout:g} s"
    except OSError as exc:
        return f"{where} cannot be reached ({exc.strerror or type(exc).__name__})"
    if code == 401:
        if user is None:
            return "authentication required (give the user and password in the URL)"
        return "authentication refused (check the user and password)"
    if code == 404:
        return "stream path not found (check the path)"
    if code == 403:
        return "access forbidden (the account may not view it)"
    if code is None:
        return f"{where} does not answer as an RTSP server"
    if 200 <= code < 300:
        return None
    return f"the camera answered RTSP {code}"


def _describe(
    host: str, port: int, url: str, authorization: str | None, timeout: float
) -> tuple[int | None, dict[str, str]]:
    """Send one DESCRIBE on a new connection; the status code (None: not an RTSP answer) and the headers."""
    lines = [f"DESCRIBE {url} RTSP/1.0", "CSeq: 1", "Accept: application/sdp", "User-Agent: mgc-edge"]
    if authorization:
        lines.append(f"Authorization: {authorization}")
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    match = re.match(r"RTSP/\d\.\d (\d{3})", head[0]) if head else None
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), value.strip())
    return (int(match[1]) if match else None), headers


def _authorization(challenge: str, user: str, password: str, url: str) -> str | None:
    """The Authorization header answering a WWW-Authenticate challenge (Basic or Digest, MD5); None otherwise."""
    scheme = challenge.split(" ", 1)[0].lower()
    if scheme == "basic":
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if scheme != "digest":
        return None
    fields = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = fields.get("realm", ""), fields.get("nonce", "")

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 (RTSP Digest is MD5 by definition)

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"DESCRIBE:{url}")
    header = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{url}"'
    if "auth" in fields.get("qop", "").split(","):
        cnonce = os.urandom(8).hex()
        response = md5(f"{ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}")
        return header + f', qop=auth, nc=00000001, cnonce="{cnonce}", response="{response}"'
    return header + f', response="{md5(f"{ha1}:{nonce}:{ha2}")}"'

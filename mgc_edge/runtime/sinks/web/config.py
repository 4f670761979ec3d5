"""Where and how the live view serves (`--serve [HOST:]PORT`, `--token`): its config, the address parser, the
access token (compared in constant time, never shown in full) and what counts as loopback. Standard library
only."""

from __future__ import annotations

import hmac
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from mgc_edge.errors import UserError

TOKEN_ENV = "MGC_EDGE_TOKEN"  # the environment variable the CLI reads when --token is not given


QUERY_KEY = "token"


class ServeError(UserError):
    """The live view cannot start (bad address, port in use, broken install); the message is one sentence."""


@dataclass(frozen=True)
class ServeConfig:
    """Where and how the live view serves. Port 0 picks a free port (see `LiveServer.port`)."""

    host: str = "127.0.0.1"
    port: int = 8080
    token: str | None = None  # required on every request when set
    max_streams: int = 32  # concurrent MJPEG + event streams; one more gets 503
    stream_fps: float = 15.0  # JPEG encodes per second at most, shared by every viewer
    jpeg_quality: int = 80
    max_width: int = 1280  # wider frames are scaled down before encoding (bandwidth, encode time)


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPv6]:PORT` -> (host, port); a bare port binds `default_host` (loopback)."""
    value = text.strip()
    host, port_text = default_host, value
    if value.startswith("["):
        inner, closing, rest = value[1:].partition("]")
        host, port_text = inner, rest[1:] if closing and rest.startswith(":") else ""
    elif ":" in value:
        host, _, port_text = value.rpartition(":")
    if not host or not port_text.isdigit() or int(port_text) > 65535:
        raise ServeError(f"--serve takes PORT or HOST:PORT (e.g. 8080 or 0.0.0.0:8080), got {text!r}.")
    return host, int(port_text)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv6 with or without brackets) is reachable from this machine only."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_name(header: str | None) -> str:
    """The host of a `Host` header, without its port: `127.0.0.1:8080` -> `127.0.0.1`, `[::1]:80` -> `::1`."""
    value = (header or "").strip()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    return value.rpartition(":")[0] if value.count(":") == 1 else value


def mask_token(token: str | None) -> str:
    """A token as it may appear on a terminal or in a log: its first two characters and its length at most."""
    if not token:
        return "(none)"
    if len(token) < 12:  # a short token would give away too much of itself through a visible prefix
        return f"***({len(token)} chars)"
    return f"{token[:2]}***({len(token)} chars)"


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header, or None."""
    scheme, _, value = (header or "").strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def token_matches(candidates: Iterable[str | None], token: str) -> bool:
    """Whether any candidate equals `token`; every candidate is compared in constant time (hmac)."""
    expected = token.encode("utf-8")
    ok = False
    for candidate in candidates:
        if candidate is not None:
            # `|`, not `or`: no early exit that would tell which candidate matched.
            ok |= hmac.compare_digest(candidate.encode("utf-8", "surrogatepass"), expected)
    return ok


def serving_urls(host: str, port: int) -> list[str]:
    """URLs to print: the host itself, or, for a wildcard address, loopback and this machine's outward address."""
    hosts = [host]
    if host in ("0.0.0.0", "::"):
        hosts = ["127.0.0.1" if host == "0.0.0.0" else "::1"]
        outward = outward_address(socket.AF_INET if host == "0.0.0.0" else socket.AF_INET6)
        hosts += [outward] if outward else []
    return [f"http://[{h}]:{port}/" if ":" in h else f"http://{h}:{port}/" for h in hosts]


def outward_address(family: socket.AddressFamily) -> str | None:
    """The address other machines reach us at: the source address of the default route. connect() on a UDP
    socket only picks the route; nothing is sent. None without a route."""
    probe = ("192.0.2.1", 9) if family == socket.AF_INET else ("2001:db8::1", 9)  # documentation ranges
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(probe)
            address = str(sock.getsockname()[0])
    except OSError:
        return None
    return None if is_loopback(address) else address

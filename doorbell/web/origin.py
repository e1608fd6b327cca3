"""Whose requests the pages answer: the device's own name or address, never a foreign one.

A web page anywhere can make a browser on the home network send requests to the
doorbell by giving its own domain name the doorbell's address (DNS rebinding):
the browser then treats the doorbell as that page's own origin. Such requests carry
the foreign name in ``Host``, so every request whose ``Host`` is not this device's
is refused (421), and every request whose ``Origin`` is not the ``Host`` it was sent
to is refused (403). An IP address is always the device's own name for this purpose
(rebinding needs a domain name); so are ``localhost``, the machine's hostname,
``<hostname>.local`` (mDNS) and the names in ``[web] server_names``.

    allowed = own_names(settings.server_names)        # computed once
    host_allowed("doorbell.local:8443", allowed)      # True
    origin_matches("https://evil.example", "doorbell.local:8443")  # False
"""

import ipaddress
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit


def _bare(host: str) -> str:
    """``host`` without its port and brackets, lower case, without a final dot."""
    host = host.strip()
    if host.startswith("["):  # [IPv6]:port
        host = host[1 : host.find("]")] if "]" in host else host[1:]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.lower().rstrip(".")


def own_names(configured: Iterable[str] = (), hostname: str | None = None) -> frozenset[str]:
    """The names this device answers to: ``localhost``, its hostname and
    ``<hostname>.local``, and ``configured`` (lower case, without a final dot)."""
    name = _bare(hostname if hostname is not None else socket.gethostname())
    names = {"localhost", name, f"{name}.local"} | {_bare(n) for n in configured}
    return frozenset(n for n in names if n)


def host_allowed(host: str | None, names: frozenset[str]) -> bool:
    """Whether a request's ``Host`` header names this device: an IP address or one of
    ``names`` (:func:`own_names`). A missing or empty Host is refused."""
    bare = _bare(host or "")
    if not bare:
        return False
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        return bare in names
    return True


def origin_matches(origin: str | None, host: str | None) -> bool:
    """Whether a request's ``Origin`` is the device it was sent to (same host and port
    as ``Host``); a request without an Origin (a typed URL, curl) passes."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
        sent = urlsplit("//" + (host or "").strip())
        port, sent_port = parts.port, sent.port
    except ValueError:  # "http://[" (an unclosed IPv6 literal), a port that is not a number
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False  # "null" (a sandboxed or file page) and anything stranger
    port = port or (443 if parts.scheme == "https" else 80)
    same_port = sent_port is None or sent_port == port
    return same_port and _bare(parts.hostname) == _bare(sent.hostname or "")

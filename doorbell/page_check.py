"""What ``doorbell check-page`` compares: the page the doorbell serves against this
release's files (see :mod:`doorbell.cli.check_page` for what it checks and what it
cannot). Only the standard library talks to the device (http.client, ssl,
html.parser); the command imports this module only when it runs, so no other
command pays for them.
"""

import hashlib
import html.parser
import http.client
import json
import os
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from doorbell.errors import DoorbellError, UsageError

PAGE = "/unlock"
STATIC_PREFIX = "/static/"
VENDOR_PREFIX = "/vendor/"
MAX_BODY = 16 << 20  # bytes: more than any page or library file
MAX_REDIRECTS = 3
TIMEOUT = 30.0  # seconds, each request
_LOADERS = {"base", "iframe", "object", "embed", "frame"}


class PageCheckError(DoorbellError):
    """The check could not be done: the device unreachable, a certificate that is not
    the one given, or this release's files not found here. The message names which."""


# -- the page -------------------------------------------------------------------------


@dataclass
class Page:
    """What a page loads: ``sources`` (every script src and link href, in order),
    ``import_maps`` (the text of each ``<script type="importmap">``) and ``foreign``
    (a line for each other inline script or code-loading element)."""

    sources: list[str] = field(default_factory=list)
    import_maps: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


class _PageParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._script: str | None = None  # the type of the inline script being read
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        handlers = sorted(name for name in found if name.startswith("on"))
        if handlers:
            self.page.foreign.append(f"inline event handler {handlers[0]}= on <{tag}>")
        if tag in _LOADERS:
            self.page.foreign.append(f"<{tag}> is not in this release's page")
        elif tag == "script":
            if "src" in found:
                self.page.sources.append(found["src"])
            else:
                self._script = found.get("type", "").strip().lower()
                self._text = []
        elif tag == "link" and "href" in found:
            self.page.sources.append(found["href"])

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag != "script" or self._script is None:
            return
        text = "".join(self._text)
        if self._script == "importmap":
            self.page.import_maps.append(text)
        else:
            kind = f' type="{self._script}"' if self._script else ""
            self.page.foreign.append(f"an inline <script{kind}> ({len(text)} characters)")
        self._script = None


def parse_page(text: str) -> Page:
    """The scripts, style sheets, import maps and foreign code of an HTML page."""
    parser = _PageParser()
    parser.feed(text)
    parser.close()
    return parser.page


# -- this release ---------------------------------------------------------------------


@dataclass(frozen=True)
class Release:
    """This release as the device should serve it: ``import_map`` (the text),
    ``files`` (URL path → SHA-256 hex of the local file) and ``version``."""

    import_map: str
    files: dict[str, str]
    version: str


def _sha256(path: str) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def local_release() -> Release:
    """This installation's page code: doorbell/web/static/ and the library files of the
    node_modules :func:`doorbell.web.vendor.find_node_modules` finds.

    Raises PageCheckError if node_modules is not found or cannot be served."""
    import doorbell
    from doorbell.web import vendor

    library = vendor.installed()
    if library is None:
        _, problem, _ = vendor.vendor_state()
        raise PageCheckError(
            f"this computer's copy of the release has no browser library to compare with "
            f"({problem}; or set ${vendor.ENVIRONMENT})"
        )
    static = os.path.join(os.path.dirname(doorbell.__file__), "web", "static")
    files = {
        STATIC_PREFIX + name: _sha256(os.path.join(static, name))
        for name in sorted(os.listdir(static))
        if os.path.isfile(os.path.join(static, name))
    }
    for name in sorted(library.files):
        files[f"{VENDOR_PREFIX}{library.tag}/{name}"] = _sha256(
            os.path.join(library.node_modules, name)
        )
    return Release(library.import_map, files, doorbell.__version__)


# -- the comparison -------------------------------------------------------------------


def _same_map(served: str, ours: str) -> bool:
    try:
        return json.loads(served) == json.loads(ours)
    except ValueError:
        return False


def compare(page: Page, release: Release, fetch: Callable[[str], bytes | None]) -> list[str]:
    """One line for each way the served ``page`` and the files ``fetch`` returns (by URL
    path; None when the device does not serve it) differ from ``release``; [] when
    they match. A pure function of its inputs."""
    problems = list(page.foreign)
    if len(page.import_maps) != 1:
        problems.append(f"the page has {len(page.import_maps)} import maps, this release one")
    elif not _same_map(page.import_maps[0], release.import_map):
        problems.append("the import map differs from this release's")
    wanted = dict(release.files)
    for source in page.sources:
        url = urllib.parse.urlsplit(source)
        if url.scheme or url.netloc:
            problems.append(f"{source}: loaded from outside the device")
        elif not url.path.startswith((STATIC_PREFIX, VENDOR_PREFIX)):
            problems.append(f"{source}: not a file of this release")
        elif url.path not in wanted:
            wanted[url.path] = ""  # fetched, and a mismatch whatever it holds
    for path, digest in sorted(wanted.items()):
        body = fetch(path)
        if body is None:
            problems.append(f"{path}: not served by the device")
        elif not digest:
            problems.append(f"{path}: not a file of this release")
        elif hashlib.sha256(body).hexdigest() != digest:
            problems.append(f"{path}: differs from this release's file")
    return problems


# -- talking to the device ------------------------------------------------------------


def normalise_fingerprint(text: str) -> str:
    """``AB:CD:…`` (or plain hex, any case) as 64 lower-case hex digits.

    Raises UsageError if it is not a SHA-256."""
    digits = text.strip().lower().removeprefix("sha256:").replace(":", "").replace(" ", "")
    if len(digits) != 64 or any(c not in "0123456789abcdef" for c in digits):
        raise UsageError(f"--fingerprint {text}: a SHA-256 is needed (AB:CD:… 32 pairs)")
    return digits


def shown_fingerprint(digits: str) -> str:
    """64 hex digits as the device shows them: AB:CD:…"""
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2)).upper()


class Device:
    """GET requests to one doorbell at ``base`` (``http://`` or ``https://`` host and
    port), over one kept-alive connection at a time. Over TLS, each connection's
    certificate is checked against ``fingerprint`` (64 hex digits) before anything is
    sent on it; ``seen`` keeps the last one seen."""

    def __init__(self, base: str, fingerprint: str | None = None) -> None:
        url = urllib.parse.urlsplit(base)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise UsageError(f"{base}: an http:// or https:// address of the doorbell is needed")
        if fingerprint and url.scheme != "https":
            raise UsageError("--fingerprint goes with an https:// address")
        self.scheme, self.host, self.port = url.scheme, url.hostname, url.port
        self.fingerprint = fingerprint
        self.seen: str | None = None
        self.origin = f"{url.scheme}://{url.netloc}"
        self._conn: http.client.HTTPConnection | None = None
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self._context.check_hostname = False  # self-signed: the fingerprint is the check
        self._context.verify_mode = ssl.CERT_NONE

    def _connect(self) -> http.client.HTTPConnection:
        if self.scheme == "http":
            conn = http.client.HTTPConnection(self.host, self.port, timeout=TIMEOUT)
            conn.connect()
            return conn
        conn = http.client.HTTPSConnection(
            self.host, self.port, timeout=TIMEOUT, context=self._context
        )
        conn.connect()
        sock = conn.sock
        assert isinstance(sock, ssl.SSLSocket)
        der = sock.getpeercert(binary_form=True) or b""
        self.seen = hashlib.sha256(der).hexdigest()
        if self.fingerprint and self.seen != self.fingerprint:
            conn.close()
            raise PageCheckError(
                f"{self.origin}: the certificate is {shown_fingerprint(self.seen)}, not the "
                f"one given: this may not be your doorbell; nothing was sent"
            )
        return conn

    def _request(self, conn: http.client.HTTPConnection, path: str) -> tuple[int, dict, bytes]:
        conn.request("GET", path, headers={"Accept-Encoding": "identity"})
        response = conn.getresponse()
        body = response.read(MAX_BODY + 1)
        if len(body) > MAX_BODY or response.will_close:
            conn.close()
            self._conn = None
        headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, headers, body[:MAX_BODY]

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        """(status, headers with lower-case names, body) of GET ``path``.

        Raises PageCheckError if the device cannot be reached or its certificate is
        not the one given."""
        try:
            if self._conn is not None:  # kept alive; the device may have closed it since
                try:
                    return self._request(self._conn, path)
                except (http.client.RemoteDisconnected, ConnectionError):
                    self.close()
            self._conn = self._connect()
            return self._request(self._conn, path)
        except (OSError, http.client.HTTPException) as err:
            self.close()
            raise PageCheckError(f"{self.origin}{path}: {err}") from None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def fetch(self, path: str) -> bytes | None:
        """The body of ``path``, or None unless the device answers 200."""
        status, _, body = self.get(path)
        return body if status == 200 else None

    def page(self) -> tuple[str, str]:
        """(the path, the HTML) of the public page: :data:`PAGE`, following the device's
        redirects within itself.

        Raises PageCheckError if it is not served, or sent elsewhere."""
        path = PAGE
        for _ in range(MAX_REDIRECTS + 1):
            status, headers, body = self.get(path)
            if status in (301, 302, 303, 307, 308) and "location" in headers:
                target = urllib.parse.urlsplit(
                    urllib.parse.urljoin(self.origin + path, headers["location"])
                )
                if f"{target.scheme}://{target.netloc}" != self.origin:
                    raise PageCheckError(f"{self.origin}{path} sends the browser elsewhere")
                path = target.path + (f"?{target.query}" if target.query else "")
                continue
            if status != 200:
                raise PageCheckError(f"{self.origin}{path}: the device answers {status}")
            return path, body.decode("utf-8", errors="replace")
        raise PageCheckError(f"{self.origin}{PAGE}: too many redirects")

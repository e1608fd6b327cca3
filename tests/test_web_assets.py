"""Law 4 in the pages: nothing they load or link comes from outside the house."""

import re
import ssl
from pathlib import Path

from doorbell.web import tls

WEB = Path(tls.__file__).parent


def test_pages_and_scripts_name_no_outside_address():
    found = []
    for path in sorted((WEB / "templates").glob("*.html")) + sorted((WEB / "static").iterdir()):
        text = path.read_text()
        found += [f"{path.name}: {m}" for m in re.findall(r"(?:https?:)?//[\w.-]+\.\w+", text)]
    assert found == []


def test_no_inline_script_or_style():
    """The CSP allows only 'self': an inline script or style would simply not run."""
    for path in sorted((WEB / "templates").glob("*.html")):
        text = path.read_text()
        assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", text) == [], path.name
        assert "<style" not in text and " style=" not in text and " onclick=" not in text


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

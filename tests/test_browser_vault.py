"""The browser's half of the vault: vault.js and player.js in Debian's chromium, and the
node_modules they load (doorbell/web/vendor.py).

A test-only aiohttp app serves the harness page (tests/browser_harness) under the
pages' Content-Security-Policy with the import map's hash, doorbell/web/static, the
library through vendor.py, and clip files as plain ranged file responses. Clips are
made by doorbell's own recorder (H.264, fragmented MP4, the vault's writer); what the
browser decrypts is compared with what Python decrypts, byte for byte.
"""

import asyncio
import base64
import hashlib
import io
import json
import posixpath
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from yarl import URL

from doorbell import vault
from doorbell.vault.stream import CHUNK_SIZE
from doorbell.web import vendor
from tests.conftest import on_a_terminal
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS

HARNESS = Path(__file__).parent / "browser_harness"
STATIC = Path(vendor.__file__).parent / "static"
NODE_MODULES = vendor.find_node_modules()
SEALED = CHUNK_SIZE + 16
PASSPHRASE = "four random words here"
CLIP_SECONDS = 60.0  # longer than the player keeps ahead (20 s), so seeking has work to do

in_the_browser = [
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="Debian's chromium is not installed (scripts/setup)",
    ),
    pytest.mark.skipif(
        NODE_MODULES is None, reason="node_modules is not installed (scripts/setup runs npm ci)"
    ),
]


def browser_test(function):
    for mark in in_the_browser:
        function = mark(function)
    return function


# -- clips made by doorbell's recorder -------------------------------------------------


@dataclass
class Clip:
    identity: vault.X25519Identity
    folder: Path  # what the test server serves under /files/
    id: str
    plaintext: bytes = field(repr=False)  # the MP4, as Python decrypts it
    index: dict = field(repr=False)  # the .idx shape, from the clip's real fragments
    fragment_ends: list[float] = field(repr=False)  # media seconds where each frame ends
    fragment_offsets: list[int] = field(repr=False)  # plaintext offset where each fragment ends

    @property
    def ciphertext(self) -> bytes:
        return (self.folder / f"{self.id}.mp4.age").read_bytes()


def record_clip(folder: Path, identity: vault.X25519Identity, seconds: float) -> str:
    """A real clip by the recorder: noise video (hardly compressible, ~225 KB/s), its
    thumbnail a real JPEG, copied into ``folder`` (and the recorder's own index, if it
    writes one, as recorded.idx.age); the clip's id."""
    import cv2
    import numpy as np

    from doorbell.recorder import Recorder
    from doorbell.store import ClipStore
    from doorbell.trigger import Start
    from tests.test_disk_full import NoiseCamera

    picture = np.random.default_rng(3).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
    camera = NoiseCamera()
    store = ClipStore(folder / "data", lambda: [identity.recipient])
    recorder = Recorder(
        store, camera.info, pre_roll=1.0, wall_time=lambda t: 1.8e9 + t, thumbnail=lambda: jpeg
    )
    recorder.add(camera.packets(1.0))
    recorder.apply([Start(at=camera.at, since=camera.at, trigger="bell")])
    recorder.add(camera.packets(seconds))
    done = recorder.stop(camera.at)
    store.close()
    assert done is not None
    for suffix, name in (
        (".mp4.age", done.clip.id),
        (".jpg.age", done.clip.id),
        (".idx.age", "recorded"),
    ):
        if store.path(done.clip.id, suffix).exists():
            shutil.copy(store.path(done.clip.id, suffix), folder / f"{name}{suffix}")
    return done.clip.id


def fragments_of(mp4: bytes) -> tuple[dict, list[float], list[int]]:
    """The index of ``mp4`` in the .idx.age shape, from its real fragments (found by
    doorbell's FragmentScanner) and its packets (PyAV: time, keyframe, byte position)."""
    import av

    from doorbell.store.fragments import FragmentScanner

    scanner = FragmentScanner()
    ends = scanner.feed(mp4)
    init = 28 + int.from_bytes(mp4[28:32], "big")  # ftyp (28 bytes from the muxer) + moov
    assert mp4[init + 4 : init + 8] == b"moof"
    starts = [init, *ends[:-1]]
    keyframes, times = [], []
    with av.open(io.BytesIO(mp4)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            if packet.pts is None:
                continue
            at = float(packet.pts * stream.time_base)
            times.append(at + float(packet.duration * stream.time_base))
            fragment = next(s for s in reversed(starts) if s <= packet.pos)
            if packet.is_keyframe:
                keyframes.append([at, fragment])
    index = {"version": 1, "size": len(mp4), "init": init, "keyframes": keyframes}
    return index, times, ends


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Clip:
    folder = tmp_path_factory.mktemp("served")
    identity = vault.X25519Identity.generate()
    clip_id = record_clip(folder, identity, CLIP_SECONDS)
    plaintext = vault.decrypt_bytes((folder / f"{clip_id}.mp4.age").read_bytes(), [identity])
    index, ends_at, offsets = fragments_of(plaintext)
    (folder / f"{clip_id}.idx.age").write_bytes(
        vault.encrypt_bytes(json.dumps(index).encode(), [identity.recipient])
    )
    recorded = folder / "recorded.idx.age"
    if recorded.exists():  # the recorder's own index says the same
        theirs = json.loads(vault.decrypt_bytes(recorded.read_bytes(), [identity]))
        assert theirs["keyframes"] == [[round(t, 3), at] for t, at in index["keyframes"]]
        assert {k: theirs[k] for k in ("version", "size", "init")} == {
            k: index[k] for k in ("version", "size", "init")
        }
    return Clip(identity, folder, clip_id, plaintext, index, ends_at, offsets)


# -- the test server and the browser ---------------------------------------------------


def harness_app(files: Path, node_modules: Path | None) -> web.Application:
    served = vendor.Vendor.load(node_modules) if node_modules else None
    import_map = served.import_map if served else vendor.EMPTY_MAP
    csp = (
        f"default-src 'self'; script-src 'self' {vendor.csp_hash(import_map)}; "
        "media-src 'self' blob:; img-src 'self' blob:"
    )

    async def page(request: web.Request) -> web.Response:
        html = (HARNESS / "harness.html").read_text().replace("{{ import_map }}", import_map)
        return web.Response(
            text=html, content_type="text/html", headers={"Content-Security-Policy": csp}
        )

    def folder_route(folder: Path, content_type: str | None = None):
        async def serve(request: web.Request) -> web.StreamResponse:
            name = request.match_info["name"]
            path = folder / name
            if "/" in name or name.startswith(".") or not path.is_file():
                raise web.HTTPNotFound(text="no such file\n")
            headers = {"Content-Type": content_type} if content_type else {}
            return web.FileResponse(path, headers=headers)

        return serve

    app = web.Application()
    app.router.add_get("/harness", page)
    app.router.add_get("/harness/{name}", folder_route(HARNESS, "text/javascript"))
    app.router.add_get("/static/{name}", folder_route(STATIC, "text/javascript"))
    app.router.add_get("/files/{name}", folder_route(files))
    vendor.add_vendor_routes(app, served)
    return app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def server(clip):
    async with TestServer(harness_app(clip.folder, NODE_MODULES), host="127.0.0.1") as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        await launched.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def harness(browser, server):
    """The harness page, loaded once for the module (the library takes ~0.3 s to load)."""
    context = await browser.new_context()
    page = await context.new_page()
    page.set_default_timeout(20_000)
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.requests = requests
    await page.goto(str(server.make_url("/harness")))
    await until(page, "window.harnessReady === true")
    yield page
    await context.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(harness):
    """The harness page for one test; after it, no CSP violation and no unhandled
    rejection happened, and its player and video are gone."""
    yield harness
    leftovers = await harness.evaluate(
        """() => {
            window.clipPlayer?.close();
            document.querySelectorAll("video").forEach((v) => v.remove());
            const found = [window.cspViolations.splice(0), window.unhandled.splice(0)];
            delete window.clipPlayer;
            delete window.keyholder;
            return found;
        }"""
    )
    assert leftovers == [[], []]


async def until(page, condition: str, timeout: float = 20.0) -> None:
    """Wait in the page until the JavaScript ``condition`` holds (polled every 20 ms)."""
    waiting = page.evaluate(
        f"""() => new Promise((resolve) => {{
            const check = () => ({condition}) ? resolve(true) : setTimeout(check, 20);
            check();
        }})"""
    )
    await asyncio.wait_for(waiting, timeout)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


async def keyholder(page, identity: vault.X25519Identity) -> None:
    """``window.keyholder`` for ``identity``, made from its identity file's text."""
    text = f"# public key: {identity.recipient}\n{identity.secret()}\n"
    await page.evaluate(
        "async (text) => { window.keyholder = await vault.Keyholder.fromIdentity(text); }", text
    )


# -- the library under the pages' CSP --------------------------------------------------


@browser_test
async def test_the_library_loads_through_the_import_map_under_the_csp(page):
    """The import map (allowed by its hash alone) maps age-encryption and @noble to
    /vendor/; every module loads from the device, nothing else is asked for."""
    assert await page.evaluate("typeof vault.Keyholder") == "function"
    vendored = [u for u in page.requests if "/vendor/" in u]
    assert vendored and all(u.endswith(".js") for u in vendored)
    assert all(u.startswith(page.url.rsplit("/", 1)[0]) for u in page.requests)
    print(f"\nmodules the page loads from /vendor/: {len(vendored)}")


# -- identities and the login key ------------------------------------------------------

AUTH_SALT = bytes.fromhex("8f1c2a7e5b0d4c3f9a6e1b2c3d4e5f60")
# authKey(passphrase, AUTH_SALT, 10): scrypt(P = UTF-8 passphrase, S = "doorbell.org/v1/auth"
# || salt, N = 2**10, r = 8, p = 1, dkLen = 32), as hashlib.scrypt gives it
AUTH_VECTORS = {
    "correct horse battery staple": "af4ae0406afcd149858b54b55028ab5a9b35570eefb0da0d213e3619830b2ec6",
    "pässwörd ✓ 鍵": "c831d36d73747008ed0838dfc0e6ff4b0ce1118f86444351e7a6e42a4e48de7d",
}


def test_the_auth_vectors_are_hashlib_scrypt():
    for passphrase, expected in AUTH_VECTORS.items():
        salt = b"doorbell.org/v1/auth" + AUTH_SALT
        got = hashlib.scrypt(passphrase.encode(), salt=salt, n=2**10, r=8, p=1, dklen=32)
        assert got.hex() == expected


@browser_test
async def test_auth_key_matches_hashlib_scrypt(page):
    for passphrase, expected in AUTH_VECTORS.items():
        got = await page.evaluate(
            """async ([passphrase, salt]) => {
                const bytes = Uint8Array.from(atob(salt), (c) => c.charCodeAt(0));
                const key = await vault.authKey(passphrase, bytes, 10);
                return Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("");
            }""",
            [passphrase, b64(AUTH_SALT)],
        )
        assert got == expected, passphrase


@browser_test
async def test_wrap_and_unwrap_an_identity_and_the_wrong_passphrase(page):
    result = await page.evaluate(
        """async (passphrase) => {
            const { identity, recipient } = await vault.generateIdentity();
            const text = vault.identityFileText(identity, recipient, "2026-11-29T10:00:00Z");
            const wrapped = await vault.wrapIdentity(text, passphrase, 10);
            const back = await vault.unwrapIdentity(wrapped, passphrase);
            const failure = async (call) => {
                try { await call(); return null; } catch (err) { return [err.name, err.message]; }
            };
            const plain = new TextEncoder().encode(text);
            return {
                identity, recipient, text, back,
                header: new TextDecoder().decode(wrapped.subarray(0, 80)),
                wrong: await failure(() => vault.unwrapIdentity(wrapped, "not " + passphrase)),
                notAge: await failure(() => vault.unwrapIdentity(plain, passphrase)),
                tooHard: await failure(() => vault.wrapIdentity(text, passphrase, 21)),
            };
        }""",
        PASSPHRASE,
    )
    assert result["identity"].startswith("AGE-SECRET-KEY-1")
    assert result["recipient"].startswith("age1")
    assert result["text"] == (
        f"# created: 2026-11-29T10:00:00Z\n# public key: {result['recipient']}\n"
        f"{result['identity']}\n"
    )
    assert result["back"] == result["identity"]
    assert result["header"].startswith("age-encryption.org/v1\n-> scrypt ")
    assert result["header"].split("\n")[1].endswith(" 10")  # the work factor asked for
    assert result["wrong"] == ["WrongPassphrase", "wrong passphrase"]
    assert result["notAge"][0] == "NotWrappedIdentity" and "not an age file" in result["notAge"][1]
    assert result["tooHard"][0] == "RangeError"
    # Python agrees on the identity: the same recipient from the same secret
    assert str(vault.X25519Identity.parse(result["identity"]).recipient) == result["recipient"]


@browser_test
async def test_unwrap_tells_a_file_not_under_a_passphrase(page):
    to_recipient = vault.encrypt_bytes(
        b"AGE-SECRET-KEY-1X\n", [vault.X25519Identity.generate().recipient]
    )
    no_key = vault.encrypt_bytes(b"# nothing here\n", [vault.ScryptRecipient(PASSPHRASE, 10)])
    result = await page.evaluate(
        """async ([a, b, passphrase]) => {
            const bytes = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
            const out = [];
            for (const file of [a, b]) {
                try { await vault.unwrapIdentity(bytes(file), passphrase); out.push(null); }
                catch (err) { out.push([err.name, err.message]); }
            }
            return out;
        }""",
        [b64(to_recipient), b64(no_key), PASSPHRASE],
    )
    assert result[0] == [
        "NotWrappedIdentity",
        "this age file is not under a passphrase (it has no scrypt stanza)",
    ]
    assert result[1] == ["NotAnIdentity", "there is no AGE-SECRET-KEY-1 line in it"]


@browser_test
async def test_the_keyholder_key_cannot_be_read_out_and_is_forgotten(page, clip):
    await keyholder(page, clip.identity)
    result = await page.evaluate(
        """async () => {
            const key = window.keyholder.key;
            let exported = "exported";
            try { await crypto.subtle.exportKey("jwk", key); } catch (err) { exported = err.name; }
            const own = Object.keys(window.keyholder);
            window.keyholder.forget();
            let after = null;
            try { await window.keyholder.decryptFile(new Uint8Array(10)); } catch (err) { after = err.message; }
            return { extractable: key.extractable, usages: key.usages, type: key.type, exported, own, after };
        }"""
    )
    assert result["extractable"] is False and result["usages"] == ["deriveBits"]
    assert result["type"] == "private" and result["exported"] == "InvalidAccessError"
    assert result["own"] == ["recipient"]  # the text is not kept
    assert "forgotten" in result["after"]


@browser_test
async def test_an_identity_wrapped_in_the_browser_opens_with_python_and_age(page, clip, tmp_path):
    """The browser makes and wraps an identity; doorbell.vault and the stock age CLI
    open the wrapped file with the passphrase, and with it a clip Python encrypted to
    its recipient; the browser decrypts that clip byte for byte."""
    made = await page.evaluate(
        """async (passphrase) => {
            const { identity, recipient } = await vault.generateIdentity();
            const text = vault.identityFileText(identity, recipient);
            const wrapped = await vault.wrapIdentity(text, passphrase, 10);
            window.madeKeyholder = await vault.Keyholder.fromIdentity(text);
            return { recipient, text, wrapped: btoa(String.fromCharCode(...wrapped)) };
        }""",
        PASSPHRASE,
    )
    wrapped = tmp_path / "identity.age"
    wrapped.write_bytes(base64.b64decode(made["wrapped"]))
    [identity] = vault.load_identities(wrapped, lambda: PASSPHRASE)
    assert str(identity.recipient) == made["recipient"]

    plaintext = clip.plaintext[: 5 * CHUNK_SIZE + 1234]
    encrypted = vault.encrypt_bytes(plaintext, [identity.recipient])
    (clip.folder / "browser-owner.mp4.age").write_bytes(encrypted)
    (tmp_path / "clip.mp4.age").write_bytes(encrypted)
    age = shutil.which("age")
    if age:  # the stock CLI, asking the passphrase on a terminal
        text = tmp_path / "identity.txt"
        code, shown = on_a_terminal([age, "-d", "-o", str(text), str(wrapped)], [PASSPHRASE])
        assert code == 0, shown
        assert text.read_text() == made["text"]
        out = tmp_path / "clip.mp4"
        code, shown = on_a_terminal(
            [age, "-d", "-i", str(wrapped), "-o", str(out), str(tmp_path / "clip.mp4.age")],
            [PASSPHRASE],
        )
        assert code == 0, shown
        assert out.read_bytes() == plaintext
    digest = await page.evaluate(
        """async () => {
            const reader = await vault.ClipReader.open("/files/browser-owner.mp4.age", window.madeKeyholder);
            const chunks = await reader.readChunks(0, reader.chunkCount);
            const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
            let at = 0;
            for (const c of chunks) { all.set(c, at); at += c.length; }
            const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
            return { hex: Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join(""),
                     size: reader.plaintextSize, cut: reader.cut };
        }"""
    )
    assert digest == {
        "hex": hashlib.sha256(plaintext).hexdigest(),
        "size": len(plaintext),
        "cut": False,
    }


# -- clips -----------------------------------------------------------------------------


async def read_all(page, url: str) -> dict:
    """What ClipReader makes of ``url`` with ``window.keyholder``: its sizes, whether it
    is cut, and the SHA-256 of every chunk it reads (in pieces of 16), or the error."""
    return await page.evaluate(
        """async (url) => {
            try {
                const reader = await vault.ClipReader.open(url, window.keyholder);
                const parts = [];
                for (let first = 0; first < reader.chunkCount; first += 16) {
                    parts.push(...(await reader.readChunks(first, 16)));
                }
                const all = new Uint8Array(parts.reduce((n, c) => n + c.length, 0));
                let at = 0;
                for (const c of parts) { all.set(c, at); at += c.length; }
                const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", all));
                return {
                    sha256: Array.from(hash, (b) => b.toString(16).padStart(2, "0")).join(""),
                    read: all.length, size: reader.plaintextSize, chunks: reader.chunkCount,
                    cut: reader.cut, last: reader.lastGoodChunk, requests: reader.stats.requests,
                };
            } catch (err) {
                return { error: err.name, message: err.message, chunk: err.chunk, offset: err.offset };
            }
        }""",
        url,
    )


@browser_test
async def test_a_clip_made_by_python_decrypts_in_the_browser_byte_for_byte(page, clip):
    await keyholder(page, clip.identity)
    got = await read_all(page, f"/files/{clip.id}.mp4.age")
    chunks = -(-len(clip.plaintext) // CHUNK_SIZE)
    assert got == {
        "sha256": hashlib.sha256(clip.plaintext).hexdigest(),
        "read": len(clip.plaintext),
        "size": len(clip.plaintext),
        "chunks": chunks,
        "cut": False,
        "last": chunks - 1,
        "requests": 2 + -(-chunks // 16),  # header, last chunk, then 16 chunks a request
    }


@browser_test
async def test_parse_header_end_finds_where_the_nonce_starts(page, clip):
    header = clip.ciphertext.index(b"\n--- ") + 1
    header = clip.ciphertext.index(b"\n", header) + 1
    got = await page.evaluate(
        """(file) => {
            const bytes = Uint8Array.from(atob(file), (c) => c.charCodeAt(0));
            const ends = [10, 60, bytes.length - 17, bytes.length - 16, bytes.length]
                .map((n) => vault.parseHeaderEnd(bytes.subarray(0, n)));
            let other = null;
            try { vault.parseHeaderEnd(new TextEncoder().encode("ftyp isom")); }
            catch (err) { other = err.name; }
            return [ends, other];
        }""",
        b64(clip.ciphertext[: header + 16]),
    )
    assert got == [[None, None, None, header, header], "DamagedFile"]


@browser_test
async def test_a_thumbnail_shows(page, clip):
    await keyholder(page, clip.identity)
    width = await page.evaluate(
        """async (url) => {
            const img = document.getElementById("thumbnail");
            const first = await player.showThumbnail(img, url, window.keyholder);
            await img.decode();
            const second = await player.showThumbnail(img, url, window.keyholder);
            let revoked = false;
            const old = new Image();
            old.src = first;
            try { await old.decode(); } catch { revoked = true; }
            await img.decode();
            return [img.naturalWidth, first.startsWith("blob:"), second !== first, revoked];
        }""",
        f"/files/{clip.id}.jpg.age",
    )
    assert width == [160, True, True, True]


async def play(page, url: str, index_url: str | None, duration: float | None = None) -> None:
    """playClip into a new video element; every state it says is kept in window.states."""
    await page.evaluate(
        """async ([fileUrl, indexUrl, duration]) => {
            window.states = [];
            const video = document.createElement("video");
            video.id = "video";
            video.muted = true;
            document.getElementById("video")?.remove();
            document.body.append(video);
            window.clipPlayer = await player.playClip(video, {
                fileUrl, indexUrl, keyholder: window.keyholder, duration,
                onState: (state) => window.states.push(state),
            });
        }""",
        [url, index_url, duration],
    )


@browser_test
async def test_play_clip_plays_a_real_clip(page, clip):
    """Without an index (404): it streams from the start and plays; it fetched less
    than the whole clip (it keeps about 20 s ahead of the play head)."""
    await keyholder(page, clip.identity)
    await play(page, f"/files/{clip.id}.mp4.age", "/files/no-such.idx.age")
    await page.evaluate("document.getElementById('video').play()")
    await until(page, "document.getElementById('video').currentTime > 1.0")
    states = await page.evaluate("window.states")
    assert states[-1]["phase"] == "streaming" and not states[-1]["indexed"]
    assert "no seek index" in states[-1]["message"] and not states[-1]["cut"]
    fetched = await page.evaluate("window.clipPlayer.reader.stats.bytes")
    size = len(clip.ciphertext)
    assert fetched < size * 0.7
    await page.evaluate("window.clipPlayer.close()")


@browser_test
async def test_a_seek_to_80_percent_with_the_index_lands_there(page, clip):
    await keyholder(page, clip.identity)
    await play(page, f"/files/{clip.id}.mp4.age", f"/files/{clip.id}.idx.age")
    video = "document.getElementById('video')"
    await until(page, f"{video}.duration > 0 && {video}.duration !== Infinity")
    duration = await page.evaluate(f"{video}.duration")
    assert duration == pytest.approx(clip.fragment_ends[-1], abs=0.1)  # known before loading
    before = await page.evaluate("window.clipPlayer.reader.stats.bytes")
    size = len(clip.ciphertext)
    seeked = await page.evaluate(
        """() => new Promise((resolve) => {
            const v = document.getElementById('video');
            v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
            v.currentTime = v.duration * 0.8;
        })"""
    )
    assert seeked == pytest.approx(duration * 0.8, abs=0.1)
    await until(page, f"{video}.readyState >= 2")  # a frame to show
    await page.evaluate(f"{video}.play()")
    await until(page, f"{video}.currentTime > {seeked + 0.3}")
    state = (await page.evaluate("window.states"))[-1]
    assert state["indexed"] and state["phase"] in ("streaming", "complete")
    fetched = await page.evaluate("window.clipPlayer.reader.stats.bytes")
    # what it fetched around 80%: not the 30 s between where it was and there
    assert fetched - before < size * 0.45
    # back to 5%, which was let go (only 30 s behind the play head are kept): it is
    # fetched again from its keyframe, and what is buffered stays bounded
    back = await page.evaluate(
        """() => new Promise((resolve) => {
            const v = document.getElementById('video');
            const had = v.buffered.start(0);
            v.addEventListener('seeked', () => resolve([had, v.currentTime]), { once: true });
            v.currentTime = v.duration * 0.05;
        })"""
    )
    assert back[0] > duration * 0.05 and back[1] == pytest.approx(duration * 0.05, abs=0.1)
    await until(page, f"{video}.readyState >= 2")
    spans = await page.evaluate(
        f"""() => {{ const b = {video}.buffered; let n = 0;
                     for (let i = 0; i < b.length; i++) n += b.end(i) - b.start(i); return n; }}"""
    )
    assert spans <= 30 + 60 + 2


@browser_test
async def test_without_an_index_a_seek_forward_waits_for_the_clip_to_load(page, clip):
    """No index, the clip's length given: a seek past what has loaded waits, says so,
    and lands there once the stream gets there."""
    await keyholder(page, clip.identity)
    await play(page, f"/files/{clip.id}.mp4.age", None, duration=clip.fragment_ends[-1])
    await until(page, "document.getElementById('video').readyState >= 2")
    seeked = await page.evaluate(
        """() => new Promise((resolve) => {
            const v = document.getElementById('video');
            v.addEventListener('seeked', () => resolve(v.currentTime), { once: true });
            v.currentTime = v.duration * 0.8;
        })"""
    )
    assert seeked == pytest.approx(clip.fragment_ends[-1] * 0.8, abs=0.1)
    messages = [s["message"] for s in await page.evaluate("window.states")]
    assert "Waiting for the clip to load up to there (it has no seek index)." in messages


def payload_start(ciphertext: bytes) -> int:
    """Where the first chunk starts: after the header's MAC line and the 16-byte nonce."""
    mac = ciphertext.index(b"\n--- ") + 1
    return ciphertext.index(b"\n", mac) + 1 + 16


def served(clip: Clip, name: str, data: bytes) -> str:
    (clip.folder / name).write_bytes(data)
    return f"/files/{name}"


def playable_end(clip: Clip, plaintext_bytes: int) -> float:
    """Media seconds up to which the first ``plaintext_bytes`` of the clip play: the end
    of the last whole fragment in them."""
    whole = sum(1 for end in clip.fragment_offsets if end <= plaintext_bytes)
    return clip.fragment_ends[whole - 1]


VIDEO_STATE = """() => {
    const v = document.getElementById('video');
    const b = v.buffered;
    return { state: window.states.at(-1), end: b.length ? b.end(b.length - 1) : 0,
             ranges: b.length, ended: v.ended, time: v.currentTime };
}"""


@browser_test
async def test_a_crash_cut_clip_reads_to_its_last_whole_chunk(page, clip):
    """Cut mid-chunk (a crash) or at a chunk's end: every whole chunk reads, as Python's
    recovery gives them; no final chunk, so the reader says cut."""
    await keyholder(page, clip.identity)
    start = payload_start(clip.ciphertext)
    for name, length in (("mid", start + 30 * SEALED + 1000), ("edge", start + 30 * SEALED)):
        cut = clip.ciphertext[:length]
        recovered = b"".join(vault.recover(io.BytesIO(cut), [clip.identity], vault.Recovery()))
        assert recovered == clip.plaintext[: 30 * CHUNK_SIZE]
        got = await read_all(page, served(clip, f"cut-{name}.mp4.age", cut))
        assert got["sha256"] == hashlib.sha256(recovered).hexdigest(), name
        assert (got["cut"], got["chunks"], got["last"]) == (True, 30, 29), name
        assert got["size"] == got["read"] == 30 * CHUNK_SIZE


@browser_test
async def test_a_crash_cut_clip_plays_to_its_last_whole_fragment_and_says_cut(page, clip):
    await keyholder(page, clip.identity)
    cut = clip.ciphertext[: payload_start(clip.ciphertext) + 30 * SEALED + 1000]
    await play(page, served(clip, "cut.mp4.age", cut), "/files/cut.idx.age")
    await until(page, "window.states.at(-1).phase === 'complete'")
    seen = await page.evaluate(VIDEO_STATE)
    assert seen["state"]["cut"] and "cut short" in seen["state"]["message"]
    assert seen["end"] == pytest.approx(playable_end(clip, 30 * CHUNK_SIZE), abs=0.01)
    await page.evaluate(
        """() => { const v = document.getElementById('video');
                   v.currentTime = v.buffered.end(0) - 0.4; return v.play(); }"""
    )
    await until(page, "document.getElementById('video').ended")  # plays to its end


@browser_test
async def test_a_tampered_chunk_is_named_and_what_comes_before_it_plays(page, clip):
    await keyholder(page, clip.identity)
    start = payload_start(clip.ciphertext)
    tampered = bytearray(clip.ciphertext)
    tampered[start + 5 * SEALED + 100] ^= 0x01
    url = served(clip, "tampered.mp4.age", bytes(tampered))
    got = await read_all(page, url)
    assert got == {
        "error": "DamagedChunk",
        "message": f"chunk 5 of the clip (bytes {start + 5 * SEALED} to {start + 6 * SEALED - 1} "
        "of its file) is damaged: it does not authenticate",
        "chunk": 5,
        "offset": start + 5 * SEALED,
    }
    await play(page, url, None)
    await until(page, "window.states.at(-1).phase === 'error'")
    seen = await page.evaluate(VIDEO_STATE)
    assert seen["state"]["error"].startswith("This clip is damaged: chunk 5 of the clip")
    assert seen["end"] == pytest.approx(playable_end(clip, 5 * CHUNK_SIZE), abs=0.01)


@browser_test
async def test_a_missing_empty_or_another_owners_clip_is_a_plain_error(page, clip):
    await keyholder(page, clip.identity)
    await play(page, "/files/no-such.mp4.age", None)
    state = (await page.evaluate("window.states")).pop()
    assert state == {
        "phase": "error",
        "indexed": False,
        "cut": False,
        "message": "",
        "error": "This clip cannot be played: the clip file is not on the doorbell.",
    }
    start = payload_start(clip.ciphertext)
    await play(page, served(clip, "empty.mp4.age", clip.ciphertext[: start + 500]), None)
    await until(page, "window.states.at(-1).phase === 'error'")
    state = (await page.evaluate("window.states")).pop()
    assert state["error"] == "This clip cannot be played: it holds no whole second of video."
    assert state["cut"]
    other = vault.encrypt_bytes(clip.plaintext[:1000], [vault.X25519Identity.generate().recipient])
    await play(page, served(clip, "other.mp4.age", other), None)
    state = (await page.evaluate("window.states")).pop()
    assert state["error"] == "This clip is not encrypted to your key."


# -- vendor.py: what it serves, and the import map -------------------------------------


def package(root: Path, where: str, manifest: dict, files: dict[str, str]) -> None:
    folder = root / where
    folder.mkdir(parents=True)
    (folder / "package.json").write_text(json.dumps(manifest))
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)


@pytest.fixture
def node_modules(tmp_path) -> Path:
    """A small node_modules laid out as npm does: age-encryption (exports one file), a
    package with subpath exports, one with only "main", a nested copy of a dependency
    at another version, and a package nobody needs."""
    root = tmp_path / "node_modules"
    package(
        root,
        "age-encryption",
        {
            "name": "age-encryption",
            "exports": "./dist/index.js",
            "dependencies": {"@noble/hashes": "^2", "@scure/base": "^2", "pq": "^1"},
        },
        {"dist/index.js": "", "dist/index.d.ts": "", "dist/index.js.map": "", "README.md": ""},
    )
    package(
        root,
        "@noble/hashes",
        {"name": "@noble/hashes", "exports": {".": "./index.js", "./sha2.js": "./sha2.js"}},
        {"index.js": "", "sha2.js": "", "src/sha2.ts": ""},
    )
    package(
        root, "@scure/base", {"name": "@scure/base", "main": "lib/index.js"}, {"lib/index.js": ""}
    )
    package(
        root,
        "pq",
        {
            "name": "pq",
            "exports": {".": {"types": "./t.d.ts", "import": "./esm/pq.js", "require": "./pq.cjs"}},
            "dependencies": {"@noble/hashes": "~1"},
        },
        {"esm/pq.js": "", "pq.cjs": ""},
    )
    package(
        root,
        "pq/node_modules/@noble/hashes",
        {"name": "@noble/hashes", "exports": {".": "./index.js", "./sha2.js": "./sha2.js"}},
        {"index.js": "", "sha2.js": ""},
    )
    package(root, "unneeded", {"name": "unneeded", "main": "x.js"}, {"x.js": ""})
    return root


def test_only_the_js_files_of_the_packages_age_encryption_needs_are_listed(node_modules):
    served = vendor.Vendor.load(node_modules)
    assert served.files == {
        "age-encryption/dist/index.js",
        "@noble/hashes/index.js",
        "@noble/hashes/sha2.js",
        "@scure/base/lib/index.js",
        "pq/esm/pq.js",
        "pq/node_modules/@noble/hashes/index.js",
        "pq/node_modules/@noble/hashes/sha2.js",
    }
    assert (
        served.path(f"{served.tag}/@noble/hashes/sha2.js")
        == node_modules.resolve() / "@noble/hashes/sha2.js"
    )
    for refused in (
        "@noble/hashes/sha2.js",  # no tag
        "000000000000/@noble/hashes/sha2.js",  # another install's tag
        f"{served.tag}/@noble/hashes/src/sha2.ts",
        f"{served.tag}/age-encryption/dist/index.js.map",
        f"{served.tag}/age-encryption/package.json",
        f"{served.tag}/unneeded/x.js",
        f"{served.tag}/@noble/hashes/../../unneeded/x.js",
        f"{served.tag}/pq/pq.cjs",
    ):
        assert served.path(refused) is None, refused


def test_the_import_map_follows_exports_and_nested_copies(node_modules):
    served = vendor.Vendor.load(node_modules)
    base = f"/vendor/{served.tag}/"
    assert json.loads(served.import_map) == {
        "imports": {
            "age-encryption": base + "age-encryption/dist/index.js",
            "@noble/hashes": base + "@noble/hashes/index.js",
            "@noble/hashes/": base + "@noble/hashes/",
            "@scure/base": base + "@scure/base/lib/index.js",
            "@scure/base/": base + "@scure/base/",
            "pq": base + "pq/esm/pq.js",  # the "import" condition, not "require"
        },
        "scopes": {
            base + "pq/": {
                "@noble/hashes": base + "pq/node_modules/@noble/hashes/index.js",
                "@noble/hashes/": base + "pq/node_modules/@noble/hashes/",
            }
        },
    }
    digest = hashlib.sha256(served.import_map.encode()).digest()
    assert served.csp_hash == f"'sha256-{base64.b64encode(digest).decode()}'"


def test_a_changed_file_changes_the_tag(node_modules):
    before = vendor.Vendor.load(node_modules).tag
    (node_modules / "@noble/hashes/sha2.js").write_text("export const changed = 1;\n")
    assert vendor.Vendor.load(node_modules).tag != before


def test_symlinks_out_of_node_modules_are_never_served(node_modules, tmp_path):
    secret = tmp_path / "secret.js"
    secret.write_text("the owner's secrets\n")
    (node_modules / "age-encryption/dist/evil.js").symlink_to(secret)
    (node_modules / "age-encryption/dist/linked").symlink_to(tmp_path, target_is_directory=True)
    served = vendor.Vendor.load(node_modules)
    assert not any("evil" in f or "linked" in f for f in served.files)
    shutil.rmtree(node_modules / "@scure/base")
    outside = tmp_path / "elsewhere"
    package(outside, "base", {"name": "@scure/base", "main": "index.js"}, {"index.js": ""})
    (node_modules / "@scure/base").symlink_to(outside / "base", target_is_directory=True)
    with pytest.raises(vendor.VendorError, match="node_modules/@scure/base leads outside"):
        vendor.Vendor.load(node_modules)


def test_a_missing_dependency_or_entry_point_is_named(node_modules):
    (node_modules / "age-encryption/dist/index.js").unlink()
    with pytest.raises(vendor.VendorError, match=r"entry point dist/index\.js is not a served"):
        vendor.Vendor.load(node_modules)
    (node_modules / "age-encryption/dist/index.js").write_text("")
    shutil.rmtree(node_modules / "@scure")
    with pytest.raises(
        vendor.VendorError, match="age-encryption needs @scure/base, which is not installed"
    ):
        vendor.Vendor.load(node_modules)


def test_find_node_modules(node_modules, tmp_path):
    environ = {vendor.ENVIRONMENT: str(node_modules)}
    assert vendor.find_node_modules(environ) == node_modules
    assert vendor.find_node_modules({vendor.ENVIRONMENT: str(tmp_path / "none")}) is None
    beside = Path(vendor.__file__).resolve().parents[2] / "node_modules"
    if (beside / "age-encryption" / "package.json").is_file():
        assert vendor.find_node_modules({}) == beside


@pytest.mark.asyncio
async def test_the_vendor_route_serves_listed_files_only(node_modules):
    served = vendor.Vendor.load(node_modules)
    (node_modules / "@noble/hashes/sha2.js").write_text("export const sha256 = 1;\n")
    served = vendor.Vendor.load(node_modules)
    app = web.Application()
    vendor.add_vendor_routes(app, served)
    async with TestClient(TestServer(app)) as client:
        ok = await client.get(f"/vendor/{served.tag}/@noble/hashes/sha2.js")
        assert ok.status == 200 and await ok.text() == "export const sha256 = 1;\n"
        assert ok.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert ok.headers["Cache-Control"] == vendor.CACHE_CONTROL
        for path in (
            f"/vendor/{served.tag}/@noble/hashes/src/sha2.ts",
            f"/vendor/{served.tag}/age-encryption/package.json",
            f"/vendor/{served.tag}/%2e%2e/%2e%2e/etc/passwd",
            f"/vendor/{served.tag}/@noble/hashes/%2e%2e/%2e%2e/unneeded/x.js",
            "/vendor/000000000000/@noble/hashes/sha2.js",
        ):
            refused = await client.get(URL(path, encoded=True))
            assert refused.status == 404, path
            assert await refused.text() == "no such library file\n"


@pytest.mark.asyncio
async def test_without_node_modules_every_vendor_request_is_503():
    app = web.Application()
    vendor.add_vendor_routes(app, None)
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/vendor/anything/age-encryption/dist/index.js")
        assert response.status == 503
        assert await response.text() == vendor.NOT_INSTALLED + "\n"


IMPORT = re.compile(
    r"""^\s*(?:(?:import|export)\b[^;'"]*?\bfrom\s*|import\s*)["']([^"']+)["']""", re.M
)


@pytest.mark.skipif(NODE_MODULES is None, reason="node_modules is not installed (scripts/setup)")
def test_every_import_of_the_pages_resolves_to_a_served_file():
    """From vault.js's imports, through the real node_modules: every bare specifier goes
    through the import map (with its scopes) and every relative one to a listed file."""
    served = vendor.Vendor.load(NODE_MODULES)
    document = json.loads(served.import_map)
    base = f"/vendor/{served.tag}/"

    def resolve(specifier: str, referrer: str) -> str:
        if specifier.startswith("."):
            return posixpath.normpath(posixpath.join(posixpath.dirname(referrer), specifier))
        scopes = sorted(
            (s for s in document.get("scopes", {}) if referrer.startswith(s)), key=len, reverse=True
        )
        for table in [document["scopes"][s] for s in scopes] + [document["imports"]]:
            if specifier in table:
                return table[specifier]
            prefixes = [k for k in table if k.endswith("/") and specifier.startswith(k)]
            if prefixes:
                longest = max(prefixes, key=len)
                return table[longest] + specifier[len(longest) :]
        raise AssertionError(f"{specifier} (from {referrer}) is not in the import map")

    todo = [("/static/vault.js", STATIC / "vault.js")]
    seen = set()
    while todo:
        url, path = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        for specifier in IMPORT.findall(path.read_text()):
            target = resolve(specifier, url)
            if target.startswith("/static/"):
                todo.append((target, STATIC / target.removeprefix("/static/")))
                continue
            assert target.startswith(base), (specifier, url, target)
            assert served.path(target.removeprefix(vendor.IMPORT_PREFIX)) is not None, target
            todo.append((target, NODE_MODULES / target.removeprefix(base)))
    library = [u for u in seen if u.startswith(base)]
    assert any("/post-quantum/node_modules/@noble/hashes/" in u for u in library)  # a scope
    print(f"\nmodules vault.js loads: {len(library)} from /vendor/")

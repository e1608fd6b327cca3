"""Owners on the device's side: pairing, the wrapped identity's release, login by
challenge, invites, removal, sign-out everywhere and the throttle, through aiohttp's
test client with a real data dir. The owner's browser is played by tests/owners.py
(its identity made here, as static/owner.js makes it in the browser)."""

import asyncio
import base64

import pytest

from doorbell import vault
from doorbell.events import EventBus
from doorbell.owners import Owners, SetupCode, derive_auth, throttle
from doorbell.store import ClipStore, Keyring
from doorbell.web.app import make_app
from doorbell.web.context import WebContext
from tests.owners import PASSPHRASE, WORK_FACTOR, pair_owner, pairing_fields, sign_in


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def fresh(tmp_path):
    """A data dir with no owner yet (and no keys at all)."""
    return tmp_path / "fresh"


def make_client(aiohttp_client, data_dir, clock):
    keyring = Keyring.in_data_dir(data_dir)
    store = ClipStore(data_dir, keyring.recipients)
    context = WebContext(
        store=store, keyring=keyring, clock=clock, wall_clock=clock, work_factor=WORK_FACTOR
    )
    context.bus = EventBus(asyncio.get_running_loop())
    return aiohttp_client(make_app(context))


def csrf(token: str) -> dict:
    return {"X-CSRF-Token": token}


async def pair(client, code: str, name: str = "Alice", identity=None):
    identity = identity or vault.X25519Identity.generate()
    body = {"code": code, "name": name, **pairing_fields(identity)}
    return await client.post("/api/pair", json=body), identity


# --- pairing --------------------------------------------------------------------------------


async def test_the_first_owner_pairs_with_the_setup_code_once(aiohttp_client, fresh, clock):
    code = SetupCode(fresh).ensure()
    client = await make_client(aiohttp_client, fresh, clock)
    for page in ("/", "/unlock"):
        response = await client.get(page, allow_redirects=False)
        assert response.status == 303 and response.headers["Location"] == "/setup"
    assert "setup code" in (await (await client.get("/setup")).text()).lower()
    response, _ = await pair(client, "AAAA-AAAA")
    assert response.status == 403 and not Owners(Keyring.in_data_dir(fresh)).has_owner()
    response, identity = await pair(client, code.lower().replace("-", " "))  # as typed
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["name"] == "Alice" and body["csrf_token"]
    assert (await client.get("/api/clips")).status == 200  # signed in by pairing
    keyring = Keyring.in_data_dir(fresh)
    assert [str(r) for r in keyring.recipients()] == [str(identity.recipient)]
    assert SetupCode(fresh).read() is None  # used up
    again, _ = await pair(client, code, name="Mallory")
    assert again.status == 403
    # the device keeps nothing that opens a clip: no secret key anywhere in its data dir
    for path in fresh.rglob("*"):
        if path.is_file():
            assert b"AGE-SECRET-KEY" not in path.read_bytes(), path


async def test_losing_keys_never_reopens_pairing_without_a_new_code(aiohttp_client, fresh, clock):
    """keys/ gone (a slip in a shell, a card fault): the session of its owner ends, and
    pairing needs a new code from someone at the device."""
    import shutil

    code = SetupCode(fresh).ensure()
    client = await make_client(aiohttp_client, fresh, clock)
    assert (await pair(client, code))[0].status == 200
    assert (await client.get("/api/clips")).status == 200
    shutil.rmtree(fresh / "keys")
    assert (await client.get("/api/clips")).status == 401
    assert (await pair(client, code, name="Mallory"))[0].status == 403
    new = SetupCode(fresh).new()  # someone at the device: doorbell setup-code --new
    assert (await pair(client, new, name="Alice again"))[0].status == 200


async def test_an_invite_pairs_a_second_owner_once(aiohttp_client, data_dir, clock):
    alice = pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    token = await sign_in(client, alice)
    invite = await (await client.post("/api/invites", headers=csrf(token))).json()
    assert len(invite["code"]) == 9
    other = await make_client(aiohttp_client, data_dir, clock)
    response, bob = await pair(other, invite["code"], name="Bob")
    assert response.status == 200, await response.text()
    recipients = [str(r) for r in Keyring.in_data_dir(data_dir).recipients()]
    assert str(bob.recipient) in recipients and str(alice.identity.recipient) in recipients
    third = await make_client(aiohttp_client, data_dir, clock)
    assert (await pair(third, invite["code"], name="Carol"))[0].status == 403  # used up
    response, _ = await pair(
        third,
        (await (await client.post("/api/invites", headers=csrf(token))).json())["code"],
        name="bob",
    )
    assert response.status == 400 and "exists already" in await response.text()


async def test_an_invite_expires_after_a_day(aiohttp_client, data_dir, clock):
    alice = pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    token = await sign_in(client, alice)
    code = (await (await client.post("/api/invites", headers=csrf(token))).json())["code"]
    clock.now += 24 * 3600 + 1
    assert (await pair(client, code, name="Late"))[0].status == 403


# --- a new browser: the wrapped identity, after a throttled online proof -------------------


async def release(client, name: str, passphrase: str):
    found = await (await client.post("/api/owners/find", json={"name": name})).json()
    auth = derive_auth(passphrase, base64.b64decode(found["salt"]), found["work_factor"])
    body = {"owner": found["owner"], "auth": base64.b64encode(auth).decode()}
    return await client.post("/api/owners/release", json=body), found


async def test_the_wrapped_identity_goes_only_to_who_proves_the_passphrase(
    aiohttp_client, data_dir, clock
):
    alice = pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    response, found = await release(client, "alice", PASSPHRASE)  # names ignore case
    assert response.status == 200 and found["owner"] == alice.id
    body = await response.json()
    wrapped = base64.b64decode(body["wrapped"])
    assert wrapped == alice.wrapped and body["owner"] == alice.id
    # the browser opens it with the passphrase; it is a standard age file
    opened = vault.decrypt_bytes(wrapped, [vault.ScryptIdentity(PASSPHRASE, 20)])
    assert alice.identity.secret().encode() in opened
    response, _ = await release(client, "Alice", "not the passphrase")
    assert response.status == 401 and "wrapped" not in await response.text()


async def test_an_unknown_name_looks_like_a_real_one(aiohttp_client, data_dir, clock):
    pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    real = await (await client.post("/api/owners/find", json={"name": "Alice"})).json()
    fake = await (await client.post("/api/owners/find", json={"name": "Nobody"})).json()
    again = await (await client.post("/api/owners/find", json={"name": "nobody "})).json()
    assert set(fake) == set(real) and fake == again and fake["owner"] != real["owner"]
    assert len(base64.b64decode(fake["salt"])) == 16 and fake["work_factor"] == real["work_factor"]
    assert (await release(client, "Nobody", PASSPHRASE))[0].status == 401


async def test_guesses_are_throttled_per_client_and_per_owner_across_restarts(
    aiohttp_client, data_dir, clock
):
    pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    for _ in range(throttle.FREE_FAILURES):
        assert (await release(client, "Alice", "wrong guess"))[0].status == 401
    response, _ = await release(client, "Alice", PASSPHRASE)
    assert response.status == 429 and response.headers["Retry-After"] == "1"
    # a restart gives no free guesses: the counts are on disk
    restarted = await make_client(aiohttp_client, data_dir, clock)
    assert (await release(restarted, "Alice", PASSPHRASE))[0].status == 429
    clock.now += throttle.delay_after(throttle.FREE_FAILURES)
    assert (await release(restarted, "Alice", PASSPHRASE))[0].status == 200


async def test_the_throttle_decides_before_the_body_is_read(aiohttp_client, data_dir, clock):
    pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    for _ in range(throttle.FREE_FAILURES):
        await pair(client, "WRONG-CODE", name="Mallory")
    for data, kind, status in (
        (b"not json", "text/plain", 429),
        (b"x" * 1_000_000, "application/json", 413),  # its size alone refuses it, unread
    ):
        for path in ("/api/pair", "/api/owners/release"):
            response = await client.post(path, data=data, headers={"Content-Type": kind})
            assert response.status == status, path


async def test_a_paired_browser_gets_in_however_hard_others_guess(aiohttp_client, data_dir, clock):
    """Login proves possession of the identity: no throttle stands in its way, so guesses
    at Alice's passphrase from anywhere never lock her browser out."""
    alice = pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    for _ in range(throttle.FREE_FAILURES + 5):
        await release(client, "Alice", "guess")
    assert (await release(client, "Alice", PASSPHRASE))[0].status == 429
    assert await sign_in(client, alice)


# --- login by challenge ---------------------------------------------------------------------


async def test_a_challenge_is_answered_once_by_the_identity_only(aiohttp_client, data_dir, clock):
    alice = pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    challenge = await (await client.post("/api/login/challenge", json={"owner": alice.id})).json()
    nonce = vault.decrypt_bytes(base64.b64decode(challenge["file"]), [alice.identity])
    assert len(nonce) == 32
    with pytest.raises(vault.NoIdentityMatchError):
        vault.decrypt_bytes(base64.b64decode(challenge["file"]), [vault.X25519Identity.generate()])
    wrong = {"challenge": challenge["challenge"], "answer": base64.b64encode(bytes(32)).decode()}
    assert (await client.post("/api/login", json=wrong)).status == 401
    right = {"challenge": challenge["challenge"], "answer": base64.b64encode(nonce).decode()}
    assert (await client.post("/api/login", json=right)).status == 401  # used up by the wrong try
    fresh = await (await client.post("/api/login/challenge", json={"owner": alice.id})).json()
    nonce = vault.decrypt_bytes(base64.b64decode(fresh["file"]), [alice.identity])
    clock.now += 121  # too old
    late = {"challenge": fresh["challenge"], "answer": base64.b64encode(nonce).decode()}
    assert (await client.post("/api/login", json=late)).status == 401
    assert (await client.post("/api/login/challenge", json={"owner": "ffff"})).status == 404


# --- removal, sign-out everywhere, passphrase change, the tab told ---------------------------


async def read_event(response) -> str:
    while True:
        block = (await response.content.readuntil(b"\n\n")).decode()
        if block.startswith("event:"):
            return block


async def test_removing_an_owner_ends_their_sessions_and_their_recipient(
    aiohttp_client, data_dir, clock
):
    alice = pair_owner(data_dir)
    bob = pair_owner(data_dir, name="Bob")
    app_client = await make_client(aiohttp_client, data_dir, clock)
    token = await sign_in(app_client, alice)
    bob_on_app = await aiohttp_client(app_client.server)  # Bob's browser, on the same device
    await sign_in(bob_on_app, bob)
    events = await bob_on_app.get("/api/events")
    response = await app_client.delete(f"/api/owners/{bob.id}", headers=csrf(token))
    assert response.status == 200 and (await response.json())["sessions_ended"] == 1
    assert (
        await asyncio.wait_for(read_event(events), 5)
        == 'event: session\ndata: {"ended": "removed"}\n\n'
    )
    assert (await bob_on_app.get("/api/clips")).status == 401
    recipients = [str(r) for r in Keyring.in_data_dir(data_dir).recipients()]
    assert str(bob.identity.recipient) not in recipients
    assert str(alice.identity.recipient) in recipients
    gone = await bob_on_app.post("/api/login/challenge", json={"owner": bob.id})
    assert gone.status == 404
    last = await app_client.delete(f"/api/owners/{alice.id}", headers=csrf(token))
    assert last.status == 409 and "last owner" in await last.text()


async def test_sign_out_everywhere_ends_every_session_of_that_owner(
    aiohttp_client, data_dir, clock
):
    alice = pair_owner(data_dir)
    bob = pair_owner(data_dir, name="Bob")
    first = await make_client(aiohttp_client, data_dir, clock)
    second = await aiohttp_client(first.server)
    bobs = await aiohttp_client(first.server)
    token = await sign_in(first, alice)
    await sign_in(second, alice)
    await sign_in(bobs, bob)
    events = await second.get("/api/events")
    response = await first.post("/api/sign-out-everywhere", headers=csrf(token))
    assert (await response.json())["sessions_ended"] == 2
    assert "signed out everywhere" in await asyncio.wait_for(read_event(events), 5)
    assert (await first.get("/api/clips")).status == 401
    assert (await second.get("/api/clips")).status == 401
    assert (await bobs.get("/api/clips")).status == 200


async def test_a_passphrase_change_rewraps_in_the_browser(aiohttp_client, data_dir, clock):
    from tests.owners import wrap

    alice = pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    token = await sign_in(client, alice)
    new = "a brand new passphrase"
    salt = bytes(range(16))
    body = {
        "wrapped": base64.b64encode(wrap(alice.identity, new)).decode(),
        "salt": base64.b64encode(salt).decode(),
        "auth": base64.b64encode(derive_auth(new, salt, WORK_FACTOR)).decode(),
        "work_factor": WORK_FACTOR,
    }
    assert (await client.post("/api/passphrase", json=body, headers=csrf(token))).status == 200
    assert (await release(client, "Alice", PASSPHRASE))[0].status == 401
    assert (await release(client, "Alice", new))[0].status == 200


async def test_the_owners_page_lists_owners_without_secrets(aiohttp_client, data_dir, clock):
    alice = pair_owner(data_dir)
    client = await make_client(aiohttp_client, data_dir, clock)
    await sign_in(client, alice)
    page = await (await client.get("/owners")).text()
    assert "Alice" in page and str(alice.identity.recipient) in page and "(you)" in page
    listed = await (await client.get("/api/owners")).json()
    assert set(listed["owners"][0]) == {"id", "name", "recipient", "created", "you"}
    assert alice.owner.wrapped not in page and alice.owner.auth.verifier not in page

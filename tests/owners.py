"""An owner as their browser would be, in Python: for tests of the device's side.

    owner = pair_owner(data_dir)                 # registered on the device, as pairing does
    csrf = await sign_in(client, owner)          # login by challenge, like static/owner.js

The identity is made here, in the test (the browser's place), wrapped under
:data:`PASSPHRASE` at scrypt work factor 10 so tests stay fast; the device learns only
what static/owner.js sends it.
"""

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from doorbell import vault
from doorbell.owners import AuthRecord, Owner, Owners, derive_auth
from doorbell.store import Keyring

PASSPHRASE = "correct horse battery staple"
WORK_FACTOR = 10


@dataclass
class PairedOwner:
    owner: Owner
    identity: vault.X25519Identity
    passphrase: str
    wrapped: bytes

    @property
    def id(self) -> str:
        return self.owner.id


def wrap(identity: vault.X25519Identity, passphrase: str) -> bytes:
    text = f"# public key: {identity.recipient}\n{identity.secret()}\n".encode()
    return vault.encrypt_bytes(text, [vault.ScryptRecipient(passphrase, WORK_FACTOR)])


def pairing_fields(identity: vault.X25519Identity, passphrase: str = PASSPHRASE) -> dict:
    """The body static/owner.js sends to /api/pair (without code and name)."""
    salt = os.urandom(16)
    return {
        "recipient": str(identity.recipient),
        "wrapped": base64.b64encode(wrap(identity, passphrase)).decode(),
        "salt": base64.b64encode(salt).decode(),
        "auth": base64.b64encode(derive_auth(passphrase, salt, WORK_FACTOR)).decode(),
        "work_factor": WORK_FACTOR,
    }


def pair_owner(
    data_dir: Path,
    name: str = "Alice",
    passphrase: str = PASSPHRASE,
    identity: vault.X25519Identity | None = None,
) -> PairedOwner:
    identity = identity or vault.X25519Identity.generate()
    salt = os.urandom(16)
    wrapped = wrap(identity, passphrase)
    record = AuthRecord.from_auth(salt, WORK_FACTOR, derive_auth(passphrase, salt, WORK_FACTOR))
    owners = Owners(Keyring.in_data_dir(data_dir))
    owner = owners.add(name, str(identity.recipient), wrapped=wrapped, auth=record)
    return PairedOwner(owner, identity, passphrase, wrapped)


async def sign_in(client, owner: PairedOwner) -> str:
    """Login by challenge through ``client`` (aiohttp's test client); the CSRF token."""
    response = await login_response(client, owner)
    assert response.status == 200, await response.text()
    return (await response.json())["csrf_token"]


async def login_response(client, owner: PairedOwner):
    """The answer to a login by challenge (aiohttp's ClientResponse)."""
    response = await client.post("/api/login/challenge", json={"owner": owner.id})
    assert response.status == 200, await response.text()
    challenge = await response.json()
    nonce = vault.decrypt_bytes(base64.b64decode(challenge["file"]), [owner.identity])
    return await client.post(
        "/api/login",
        json={"challenge": challenge["challenge"], "answer": base64.b64encode(nonce).decode()},
    )

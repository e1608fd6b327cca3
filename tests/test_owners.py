"""The owners core without the web: codes, the throttle, the registry and
recipients.txt, login challenges."""

import json

import pytest

from doorbell import vault
from doorbell.owners import Challenges, Owners, OwnersError, SetupCode, codes, throttle
from doorbell.owners.throttle import Throttle, client_key, delay_after
from doorbell.store import Keyring


def test_codes_are_read_back_as_typed():
    code = codes.new_code()
    assert len(code) == 9 and code[4] == "-"
    assert codes.same(code.lower().replace("-", " "), code)
    assert codes.same("0o1l-ii00".upper(), "0011-1100")  # O is 0, I and L are 1
    assert not codes.same("AAAA-AAAB", "AAAA-AAAA")


def test_the_setup_code_file_is_private_and_used_once(tmp_path):
    setup = SetupCode(tmp_path)
    assert setup.read() is None
    code = setup.ensure()
    assert setup.ensure() == code and setup.matches(code)
    assert (tmp_path / "setup-code").stat().st_mode & 0o777 == 0o600
    setup.consume()
    assert setup.read() is None and not setup.matches(code)
    (tmp_path / "setup-code").write_text("short\n")
    assert setup.read() is None  # a damaged file opens nothing


def test_the_waits_grow_and_stop_at_five_minutes():
    waits = [delay_after(n) for n in range(20)]
    assert waits[: throttle.FREE_FAILURES] == [0.0] * throttle.FREE_FAILURES
    assert waits[throttle.FREE_FAILURES : throttle.FREE_FAILURES + 4] == [1.0, 2.0, 4.0, 8.0]
    assert waits == sorted(waits) and max(waits) == 300.0


@pytest.mark.parametrize(
    ("remote", "key"),
    [
        ("192.168.1.20", "client:192.168.1.20"),
        ("::ffff:192.168.1.20", "client:192.168.1.20"),
        ("2001:db8:1:2:aaaa::1", "client:2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "client:2001:db8:1:2::/64"),  # the same /64: one client
        ("fe80::1%eth0", "client:fe80::/64"),
        (None, "client:unknown"),
        ("not an address", "client:unknown"),
    ],
)
def test_a_client_is_its_address_or_its_ipv6_64(remote, key):
    assert client_key(remote) == key


def test_the_throttle_survives_a_restart_and_a_clock_stepped_back(tmp_path):
    now = [1000.0]
    path = tmp_path / "throttle.json"
    first = Throttle(path, lambda: now[0])
    for _ in range(throttle.FREE_FAILURES + 2):
        first.failed(["client:a", "owner:x"])
    assert first.wait(["client:b"]) == 0.0
    assert first.wait(["client:b", "owner:x"]) == 4.0  # the owner's count holds for all
    again = Throttle(path, lambda: now[0])
    assert again.wait(["client:a"]) == 4.0
    now[0] -= 3600  # the clock went back an hour: the wait is never longer than the delay
    assert again.wait(["client:a"]) == 4.0
    now[0] += 3600 + 4
    assert again.wait(["client:a"]) == 0.0
    again.succeeded(["client:a"])
    assert Throttle(path, lambda: now[0]).failures("client:a") == 0
    path.write_text("{not json")
    assert Throttle(path, lambda: now[0]).wait(["client:a"]) == 0.0  # damaged: said, not fatal


def test_the_throttle_keeps_at_most_its_limit_of_keys(tmp_path, monkeypatch):
    monkeypatch.setattr(throttle, "MAX_KEYS", 10)
    gate = Throttle(tmp_path / "t.json", lambda: 0.0)
    for n in range(25):
        gate.failed([f"client:{n}"])
    kept = json.loads((tmp_path / "t.json").read_text())
    assert len(kept) == 10 and "client:24" in kept and "client:0" not in kept


def test_removing_an_owner_takes_only_their_line_from_recipients(tmp_path):
    keyring = Keyring.in_data_dir(tmp_path)
    owners = Owners(keyring)
    manual = vault.X25519Identity.generate().recipient
    keyring.add_recipient(manual, "added by hand")
    alice = owners.add("Alice", str(vault.X25519Identity.generate().recipient))
    bob = owners.add("Bob", str(vault.X25519Identity.generate().recipient))
    with pytest.raises(OwnersError, match="exists already"):
        owners.add(" alice ", str(vault.X25519Identity.generate().recipient))
    with pytest.raises(OwnersError, match="belongs to an owner"):
        owners.add("Carol", bob.recipient)
    owners.remove(bob.id)
    text = keyring.recipients_file.read_text()
    assert bob.recipient not in text and "Bob" not in text
    assert alice.recipient in text and str(manual) in text and "added by hand" in text
    with pytest.raises(OwnersError, match="last owner"):
        owners.remove(alice.id)
    assert (keyring.folder / "owners.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("name", ["", " ", "x" * 41, "tab\there", 7, None])
def test_an_owner_s_name_is_short_printable_text(tmp_path, name):
    with pytest.raises(OwnersError, match="name"):
        Owners(Keyring.in_data_dir(tmp_path)).add(
            name, str(vault.X25519Identity.generate().recipient)
        )


def test_a_challenge_opens_only_with_the_identity_once_and_in_time():
    now = [0.0]
    challenges = Challenges(lambda: now[0])
    identity = vault.X25519Identity.generate()
    file, challenge_id = challenges.issue("owner1", str(identity.recipient))
    nonce = vault.decrypt_bytes(file, [identity])
    assert challenges.answer(challenge_id, nonce) == "owner1"
    assert challenges.answer(challenge_id, nonce) is None  # once
    file, challenge_id = challenges.issue("owner1", str(identity.recipient))
    now[0] += 121
    assert challenges.answer(challenge_id, vault.decrypt_bytes(file, [identity])) is None

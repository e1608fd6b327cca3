"""Fuzzing the age reader: arbitrary bytes and damaged real files, with hypothesis.

Whatever the bytes, the vault answers with one of its documented errors (a
:class:`~doorbell.errors.DoorbellError`: HeaderError, NoIdentityMatchError,
HeaderMacError, PayloadError, TruncatedError), never another exception and never
a hang; what it releases of a damaged file is an authentic prefix of the
plaintext, and a file that decrypts whole is the file as it was written. Each
way in is tried: the header parser, streaming (``open_header`` and
``iter_plaintext``), random access (``Reader``), ``recover``, ``cut_in_header``
and the ``doorbell decrypt`` command.

Seeds: files from our writer (0 to 2 chunks, one and two recipients, a passphrase),
one from the real ``age``, and the C2SP CCTV vectors (``tests/vectors/age``).
"""

import hashlib
import io
import shutil
import signal
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from doorbell import cli, vault
from doorbell.errors import DoorbellError
from doorbell.vault.header import VERSION_LINE, b64encode, parse_header
from doorbell.vault.stream import SEALED_CHUNK_SIZE
from tests.test_vault_vectors import load as load_vector

CHUNK = vault.CHUNK_SIZE
VECTORS = Path(__file__).resolve().parent / "vectors" / "age"
OWNER = vault.X25519Identity.generate()
OTHER = vault.X25519Identity.generate()
PASSPHRASE = "correct horse battery staple"
# A mutated work factor must not cost seconds and gigabytes: scrypt above 2**12 is refused.
WORK_FACTOR_CAP = 12
SECONDS = 10  # any one example taking longer is a hang
FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
NAMES = count()


@dataclass(frozen=True)
class Seed:
    """A real age file, what opens it, and (for a valid one) its plaintext's digest."""

    data: bytes
    identities: list = field(hash=False)
    digest: bytes | None  # None: the file is not valid as it is


def identities_of(meta: dict[str, list[str]]) -> list:
    found: list = [
        vault.X25519Identity.parse(text)
        for text in meta.get("identity", [])
        if not text.startswith("AGE-SECRET-KEY-PQ-")
    ]
    found += [vault.ScryptIdentity(p, WORK_FACTOR_CAP) for p in meta.get("passphrase", [])]
    return found


def vector_seeds() -> dict[str, Seed]:
    seeds = {}
    for path in sorted(VECTORS.iterdir()):
        if path.suffix or path.name in {"SOURCE.txt"} or path.name.startswith("armor"):
            continue
        meta, body = load_vector(path)
        if len(body) > 4 * SEALED_CHUNK_SIZE:  # the 257-chunk ones: slow to mutate, nothing new
            continue
        valid = meta["expect"] == ["success"] and not path.name.startswith("hybrid")
        digest = bytes.fromhex(meta["payload"][0]) if valid else None
        seeds[f"cctv/{path.name}"] = Seed(body, identities_of(meta), digest)
    return seeds


def ours(size: int, recipients: list, identities: list) -> Seed:
    plain = bytes((n * 7 + size) % 251 for n in range(size))
    data = vault.encrypt_bytes(plain, recipients)
    return Seed(data, identities, hashlib.sha256(plain).digest())


def age_seed() -> Seed:
    age = shutil.which("age")
    assert age, "the real age CLI is needed (Debian: apt-get install age)"
    plain = bytes(range(256)) * 300  # 76,800 bytes: two chunks
    made = subprocess.run(
        [age, "-r", str(OWNER.recipient)], input=plain, capture_output=True, check=True
    )
    return Seed(made.stdout, [OWNER], hashlib.sha256(plain).digest())


SEEDS: dict[str, Seed] = {
    "ours/empty": ours(0, [OWNER.recipient], [OWNER]),
    "ours/small": ours(100, [OWNER.recipient], [OWNER]),
    "ours/one-chunk": ours(CHUNK, [OWNER.recipient], [OWNER]),
    "ours/two-chunks": ours(CHUNK + 1, [OWNER.recipient], [OWNER]),
    "ours/two-recipients": ours(300, [OTHER.recipient, OWNER.recipient], [OWNER]),
    "ours/passphrase": ours(
        50, [vault.ScryptRecipient(PASSPHRASE, 2)], [vault.ScryptIdentity(PASSPHRASE, 12)]
    ),
    "age/two-chunks": age_seed(),
    **vector_seeds(),
}
VALID = sorted(name for name, seed in SEEDS.items() if seed.digest is not None)


class Hang(Exception):
    pass


@contextmanager
def no_hang(seconds: float = SECONDS) -> Iterator[None]:
    """Turn an example that runs longer than ``seconds`` into a failure, not a stuck run."""

    def expired(signum, frame):  # type: ignore[no-untyped-def]
        raise Hang(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- the ways in ------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one way of reading gave: the bytes it released and the error it ended with."""

    released: bytes
    error: vault.VaultError | None


def attempt(read: Callable[[list[bytes]], None]) -> Outcome:
    """Run ``read`` (which appends what it releases); only a vault error may end it."""
    released: list[bytes] = []
    try:
        read(released)
    except vault.VaultError as err:
        return Outcome(b"".join(released), err)
    return Outcome(b"".join(released), None)


def streaming(data: bytes, identities: list) -> Outcome:
    def read(out: list[bytes]) -> None:
        stream = io.BytesIO(data)
        try:
            _, cipher = vault.open_header(stream, identities)
        except vault.VaultError as err:  # as its callers do: open_header knows no name
            err.source = "fuzzed.age"
            raise
        out.extend(vault.iter_plaintext(stream, cipher, "fuzzed.age"))

    return attempt(read)


def random_access(data: bytes, identities: list) -> Outcome:
    def read(out: list[bytes]) -> None:
        with vault.Reader(io.BytesIO(data), identities, "fuzzed.age") as reader:
            out.append(reader.read(CHUNK // 2))  # into the first chunk, then the rest
            out.append(reader.read())

    return attempt(read)


def recovered(data: bytes, identities: list) -> Outcome:
    report = vault.Recovery()

    def read(out: list[bytes]) -> None:
        out.extend(vault.recover(io.BytesIO(data), identities, report, "fuzzed.age"))

    outcome = attempt(read)
    if outcome.error is None and not report.complete:
        outcome.error = report.error
    report.describe()  # the summary line never fails either
    return outcome


WAYS = {"streaming": streaming, "random access": random_access, "recover": recovered}


def check_any_bytes(data: bytes, identities: list) -> dict[str, Outcome]:
    """Every way in, on ``data``: only vault errors, each naming the file, and no hang."""
    with no_hang():
        with suppress(vault.HeaderError):
            parse_header(io.BytesIO(data).readline)
        vault.cut_in_header(io.BytesIO(data))
        outcomes = {name: way(data, identities) for name, way in WAYS.items()}
    for name, outcome in outcomes.items():
        if outcome.error is not None:
            assert isinstance(outcome.error, DoorbellError)
            assert str(outcome.error).startswith("fuzzed.age: "), (name, str(outcome.error))
    return outcomes


def check_damaged(seed: Seed, data: bytes) -> None:
    """``data`` is ``seed``'s file after some damage: what is released is an authentic
    prefix, and a file that opens whole is the file as written."""
    outcomes = check_any_bytes(data, seed.identities)
    if seed.digest is None:
        return
    plain = None
    for name, outcome in outcomes.items():
        if outcome.error is None:
            assert data == seed.data, f"{name}: a changed file decrypted"
            assert hashlib.sha256(outcome.released).digest() == seed.digest
            plain = outcome.released
    if plain is None:  # nothing opened whole: compare the prefixes with the original
        plain = streaming(seed.data, seed.identities).released
    for name, outcome in outcomes.items():
        assert plain.startswith(outcome.released), f"{name} released bytes that are not authentic"


# -- damage ---------------------------------------------------------------------------

# Positions lean to the header (where the parsing is) and the chunk edges.
position = st.one_of(
    st.integers(0, 400),
    st.integers(0, 1 << 20),
    st.builds(lambda k, d: k * SEALED_CHUNK_SIZE + d, st.integers(0, 2), st.integers(-20, 220)),
)


@dataclass(frozen=True)
class Damage:
    """One change to a file: ``kind`` at ``pos`` (taken modulo the file's length), with
    ``size`` bytes (delete, duplicate), ``extra`` bytes (insert) or ``bit`` (flip);
    ``to`` is where a duplicate goes. Small to print, so a failure reads as a recipe."""

    kind: str
    pos: int
    size: int = 0
    extra: bytes = b""
    to: int = 0

    def apply(self, data: bytearray) -> None:
        at = self.pos % (len(data) + 1)
        if self.kind == "flip" and data:
            data[self.pos % len(data)] ^= 1 << self.size
        elif self.kind == "insert":
            data[at:at] = self.extra
        elif self.kind == "delete":
            del data[at : at + self.size]
        elif self.kind == "truncate":
            del data[at:]
        elif self.kind == "duplicate":
            piece = bytes(data[at : at + self.size])
            to = self.to % (len(data) + 1)
            data[to:to] = piece


def damaged_copy(data: bytes, damages: list[Damage]) -> bytes:
    copy = bytearray(data)
    for one in damages:
        one.apply(copy)
    return bytes(copy)


lengths = st.one_of(st.integers(1, 80), st.sampled_from([16, SEALED_CHUNK_SIZE, CHUNK]))
SMALL_INSERTS = st.sampled_from([b"\n", b" ", b"\r", b"-> ", b"=", b"A", b"---"])
damage = st.one_of(
    st.builds(Damage, st.just("flip"), position, st.integers(0, 7)),
    st.builds(Damage, st.just("insert"), position, extra=st.binary(min_size=1, max_size=8)),
    st.builds(Damage, st.just("insert"), position, extra=SMALL_INSERTS),
    st.builds(Damage, st.just("delete"), position, lengths),
    st.builds(Damage, st.just("truncate"), position),
    st.builds(Damage, st.just("duplicate"), position, lengths, to=position),
)


def damaged(names: list[str]) -> st.SearchStrategy[tuple[str, list[Damage]]]:
    """A seed's name and one to three changes to make to it."""
    return st.tuples(st.sampled_from(names), st.lists(damage, min_size=1, max_size=3))


# -- the properties -----------------------------------------------------------------------


def test_every_seed_opens_as_its_vector_says():
    """The seeds are what they claim: the valid ones decrypt to their digest by every way."""
    assert len(VALID) >= 15
    for name in VALID:
        seed = SEEDS[name]
        for way, outcome in check_any_bytes(seed.data, seed.identities).items():
            assert outcome.error is None, f"{name} by {way}: {outcome.error}"
            assert hashlib.sha256(outcome.released).digest() == seed.digest


@FUZZ
@given(damaged(VALID))
def test_a_damaged_valid_file_never_gives_plaintext_it_should_not(case):
    name, damages = case
    check_damaged(SEEDS[name], damaged_copy(SEEDS[name].data, damages))


@FUZZ
@given(damaged(sorted(SEEDS)))
def test_a_damaged_vector_of_any_kind_gives_only_vault_errors(case):
    name, damages = case
    check_any_bytes(damaged_copy(SEEDS[name].data, damages), SEEDS[name].identities)


@FUZZ
@given(st.binary(max_size=3000))
@example(b"")
@example(VERSION_LINE)
@example(VERSION_LINE + b"-> X25519\n\n--- \n")
def test_arbitrary_bytes_give_only_vault_errors(data):
    check_any_bytes(data, [OWNER])


# A header from the grammar's own pieces, mostly valid, so the parser gets deep.
ARG = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_!~", max_size=50)
TYPE = st.sampled_from(["X25519", "scrypt", "ssh-ed25519", "mlkem768x25519", "grease-x", "→"])
BASE64 = st.binary(max_size=200).map(lambda b: b64encode(b).decode())


@st.composite
def stanza_lines(draw: st.DrawFn) -> str:
    kind = draw(TYPE)
    args = draw(
        st.lists(st.one_of(ARG, BASE64, st.sampled_from(["10", "22", "99", "0"])), max_size=4)
    )
    body = draw(BASE64)
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append("")
    if draw(st.booleans()):  # now and then a broken body or line
        lines = draw(st.lists(st.one_of(BASE64, ARG), max_size=3)) or lines
    return "\n".join([" ".join(["->", kind, *args]), *lines]) + "\n"


@st.composite
def headers(draw: st.DrawFn) -> bytes:
    stanzas = "".join(draw(st.lists(stanza_lines(), max_size=5)))
    mac = draw(st.one_of(BASE64, st.just("A" * 43)))
    text = "age-encryption.org/v1\n" + stanzas + "--- " + mac + "\n"
    return text.encode() + draw(st.binary(max_size=100))


@FUZZ
@given(headers())
def test_headers_from_the_grammar_give_only_vault_errors(data):
    check_any_bytes(data, [OWNER, vault.ScryptIdentity(PASSPHRASE, WORK_FACTOR_CAP)])


# -- the command ----------------------------------------------------------------------


def decrypt(args: list[str]) -> DoorbellError | None:
    """``doorbell decrypt`` in this process, as ``cli.main`` runs it but without turning
    this process's core dumps off; the error it would print, or None."""
    parsed = cli.build_parser().parse_args(["decrypt", *args])
    try:
        assert parsed.func(parsed) == 0
    except DoorbellError as err:
        return err
    return None


@settings(FUZZ, max_examples=40)
@given(damaged(VALID))
def test_decrypt_of_a_damaged_file_leaves_no_output_and_names_it(tmp_path, case):
    name, damages = case
    seed = SEEDS[name]
    data = damaged_copy(seed.data, damages)
    if any(isinstance(i, vault.ScryptIdentity) for i in seed.identities):
        return  # the command asks for a passphrase only for an identity file
    n = next(NAMES)
    path = tmp_path / f"in-{n}.age"
    path.write_bytes(data)
    key = tmp_path / f"key-{n}.txt"
    key.write_text("".join(f"{i.secret()}\n" for i in seed.identities))
    plain = streaming(seed.data, seed.identities).released
    # Whole, the file must be as written; a range needs only its own chunks and the
    # final one to be intact (each chunk is authenticated on its own), and is exact.
    for extra, expected in (
        ([], plain),
        (["--offset", "70000", "--length", "100"], plain[70000:70100]),
    ):
        out = tmp_path / f"out-{n}-{len(extra)}"
        with no_hang():
            error = decrypt(["-i", str(key), *extra, "-o", str(out), str(path)])
        if error is None:
            assert out.read_bytes() == expected
            assert extra or data == seed.data
            continue
        assert isinstance(error, vault.VaultError), repr(error)
        assert str(error).startswith(f"{path}: ")
        assert not out.exists()
        assert not Path(f"{out}.part").exists()

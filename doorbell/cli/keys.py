"""``doorbell keys recovery | init | export | add-recipient``: the keys new clips are
encrypted to, and identities made outside the browser.

The doorbell pairs its owners in the browser (``doorbell setup-code``): the browser
makes the owner's identity, the device keeps only its recipient. These commands are
for the rest: a paper recovery key made on the device and shown once (``recovery``),
an identity file made on the owner's own computer (``init``), one more recipient
(``add-recipient``), and reading a legacy ``keys/identity.age`` (``export``).
"""

import argparse
import os
import sys

from doorbell.cli.common import add_data_dir_option, data_dir, passphrase
from doorbell.errors import DoorbellError, UsageError


def cmd_keys_recovery(args: argparse.Namespace) -> int:
    """Make a paper recovery key: an X25519 identity, printed once on the terminal with a
    QR code of it and how to use it, whose recipient alone is recorded in the data dir
    (``keys/owners.json`` and ``keys/recipients.txt``): every new clip is encrypted to
    it too. The identity is never written to a file by this command. Returns 0.

    The recipient is recorded before the key is shown, so a key on paper always opens
    the clips recorded after it. Refuses (UsageError, exit 2, nothing made) to print
    to something other than a terminal without ``--yes-print-to-pipe``; raises a
    DoorbellError (exit 1) if the data dir cannot be written by this user.
    """
    from doorbell import vault
    from doorbell.owners import Owners
    from doorbell.store.keyring import Keyring

    if not sys.stdout.isatty() and not args.yes_print_to_pipe:
        raise UsageError(
            "the recovery key is printed once, to a terminal: run me on one, or give "
            "--yes-print-to-pipe to print it to a pipe or file (which may keep it)"
        )
    folder = data_dir(args)
    identity = vault.X25519Identity.generate()
    try:
        Owners(Keyring.in_data_dir(folder)).add_recovery(identity.recipient)
    except PermissionError as err:
        raise DoorbellError(
            f"{err.filename or folder}: cannot write the keys as this user: run "
            f"'sudo -u doorbell {this_command()} keys recovery' (or with sudo) on the doorbell"
        ) from None
    give_back(folder, ["keys", "keys/owners.json", "keys/owners.lock", "keys/recipients.txt"])
    _show_recovery(identity.secret(), str(identity.recipient))
    return 0


def this_command() -> str:
    """How to run this doorbell command again: the ``doorbell`` beside this Python
    (``/opt/doorbell/venv/bin/doorbell`` on a Pi, where it is not on PATH)."""
    beside = os.path.join(os.path.dirname(sys.executable), "doorbell")
    return beside if os.path.isfile(beside) else "doorbell"


def give_back(folder: str, names: list[str]) -> None:
    """Run as root (sudo): give the files ``names`` (relative to the data dir
    ``folder``) that root now owns to the data dir's owner, the service's user, who
    must go on reading them. Does nothing for another user, or for a missing file."""
    if os.geteuid() != 0:
        return
    owner = os.stat(folder)
    for name in names:
        path = os.path.join(folder, name)
        try:
            if os.lstat(path).st_uid == 0 and owner.st_uid != 0:
                os.chown(path, owner.st_uid, owner.st_gid, follow_symlinks=False)
        except FileNotFoundError:
            continue


def _show_recovery(secret: str, recipient: str) -> None:
    """The key, its QR code (segno's compact terminal form: two rows a line) and how to
    use it, on stdout."""
    import segno

    print(
        f"Paper recovery key. It is shown this once: write it down or print it now.\n\n  {secret}\n"
    )
    segno.make(secret, micro=False).terminal(out=sys.stdout, compact=True)
    print(
        f"""
public key, recorded on the doorbell: {recipient}
Every clip recorded from now on is encrypted to it too (clips from before are not).
To open a clip on any computer with the stock age tool (https://age-encryption.org):
  1. type the key above into a file, recovery.txt (or scan the QR code)
  2. age -d -i recovery.txt CLIP.mp4.age > clip.mp4
Keep the paper away from the doorbell: whoever holds it can open every clip."""
    )
    sys.stdout.flush()


INIT_ROLE = (
    "The doorbell pairs owners in the browser; use this on your computer to make an "
    "identity file whose recipient you add with add-recipient."
)


def cmd_keys_init(args: argparse.Namespace) -> int:
    """On the owner's own computer: make an identity in the data dir (``--data-dir``),
    encrypted under a passphrase, and say how to back it up and how to give its
    recipient to the doorbell (``doorbell keys add-recipient`` there). Returns 0.

    Raises UsageError if an identity exists already (it is kept) or the passphrase is
    refused; nothing is written then.
    """
    from doorbell.store.keyring import Keyring, check_passphrase, measure_work_factor

    keyring = Keyring.in_data_dir(data_dir(args))
    if keyring.has_identity():
        raise UsageError(f"{keyring.identity_file} exists already; the owner identity is kept")
    secret = passphrase(args, confirm=True)
    check_passphrase(secret)
    if len(secret) < 12:
        print("note: a passphrase of 12 or more characters (or five words) is much harder to guess")
    factor = args.work_factor if args.work_factor is not None else measure_work_factor()
    identity = keyring.init(secret, factor)
    mib = 2**factor // 1024
    print(
        f"""{INIT_ROLE}

Owner identity created.
  recipient (public key, safe to share):  {identity.recipient}
  identity, encrypted under your passphrase:  {keyring.identity_file}
  passphrase work factor: 2^{factor} ({mib} MiB of memory to unlock)

Back up your identity now: without it and your passphrase no clip can be opened.
  - copy {keyring.identity_file} anywhere (it is useless without the passphrase), or
  - run 'doorbell keys export' and keep the key it prints on paper or in a password manager.
Any clip opens with the stock age tool on any computer:
  age -d -i identity.txt CLIP.mp4.age > clip.mp4
To have the doorbell encrypt new clips to it, run on the doorbell:
  sudo -u doorbell /opt/doorbell/venv/bin/doorbell keys add-recipient {identity.recipient}"""
    )
    return 0


def cmd_keys_export(args: argparse.Namespace) -> int:
    """Print each owner identity as ``AGE-SECRET-KEY-1…`` under a comment naming its
    public key, for ``age -d -i``. Returns 0.

    Raises a DoorbellError naming the identity file on a wrong passphrase.
    """
    from doorbell.store.keyring import Keyring

    keyring = Keyring.in_data_dir(data_dir(args))
    identities = keyring.unlock(passphrase(args))
    if sys.stdout.isatty():
        print("# This is your secret key. Anyone who has it can open every clip.", file=sys.stderr)
    for identity in identities:
        print(f"# public key: {identity.recipient}\n{identity.secret()}")
    return 0


def cmd_keys_add_recipient(args: argparse.Namespace) -> int:
    """Add one ``age1…`` public key to the recipients of new clips. Returns 0, also
    when the key is there already.

    Raises a DoorbellError if the key does not parse (a secret key is never echoed).
    """
    from doorbell import vault
    from doorbell.store.keyring import Keyring

    keyring = Keyring.in_data_dir(data_dir(args))
    recipient = vault.X25519Recipient.parse(args.recipient)
    added = keyring.add_recipient(recipient, args.comment or "added with keys add-recipient")
    give_back(data_dir(args), ["keys", "keys/recipients.txt"])
    count = len(keyring.recipients())
    state = "added" if added else "already a recipient"
    print(f"{recipient}: {state}; new clips are encrypted to {count} recipient(s)")
    return 0


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``keys`` and its actions to the top-level ``commands``."""
    keys = commands.add_parser("keys", help="the owner's keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )

    recovery = keys.add_parser(
        "recovery", help="make a paper recovery key: shown once, only its public key kept"
    )
    add_data_dir_option(recovery)
    recovery.add_argument(
        "--yes-print-to-pipe",
        action="store_true",
        help="print the key although the output is not a terminal (a file or pipe may keep it)",
    )
    recovery.set_defaults(func=cmd_keys_recovery)

    init = keys.add_parser(
        "init",
        help="make an identity file on your own computer (owners pair in the browser)",
        description=INIT_ROLE,
    )
    add_data_dir_option(init)
    init.add_argument("--passphrase-file", metavar="F", help="read the passphrase from F")
    init.add_argument(
        "--work-factor",
        type=int,
        choices=range(10, 23),
        metavar="N",
        help="scrypt work factor, 10-22 (default: measured here, about 1 s to unlock)",
    )
    init.set_defaults(func=cmd_keys_init)

    export = keys.add_parser(
        "export", help="print the identity in keys/identity.age (legacy) for 'age -d -i'"
    )
    add_data_dir_option(export)
    export.add_argument("--passphrase-file", metavar="F", help="read the passphrase from F")
    export.set_defaults(func=cmd_keys_export)

    add = keys.add_parser("add-recipient", help="encrypt new clips to another age1… key too")
    add_data_dir_option(add)
    add.add_argument("recipient", metavar="age1…")
    add.add_argument("--comment", help="a note kept beside the key in recipients.txt")
    add.set_defaults(func=cmd_keys_add_recipient)

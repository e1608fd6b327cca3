"""``doorbell keys init | export | add-recipient``: the owner's identity and the
public keys new clips are encrypted to."""

import argparse
import sys

from doorbell.cli.common import add_data_dir_option, data_dir, passphrase
from doorbell.errors import UsageError


def cmd_keys_init(args: argparse.Namespace) -> int:
    """Make the owner identity in the data dir, encrypted under a passphrase, and say
    how to back it up. Returns 0.

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
        f"""Owner identity created.
  recipient (public key, safe to share):  {identity.recipient}
  identity, encrypted under your passphrase:  {keyring.identity_file}
  passphrase work factor: 2^{factor} ({mib} MiB of memory to unlock)

Back up your identity now: without it and your passphrase no clip can be opened.
  - copy {keyring.identity_file} anywhere (it is useless without the passphrase), or
  - run 'doorbell keys export' and keep the key it prints on paper or in a password manager.
Any clip opens with the stock age tool on any computer:
  age -d -i identity.txt CLIP.mp4.age > clip.mp4"""
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
    count = len(keyring.recipients())
    state = "added" if added else "already a recipient"
    print(f"{recipient}: {state}; new clips are encrypted to {count} recipient(s)")
    return 0


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``keys`` and its actions to the top-level ``commands``."""
    keys = commands.add_parser("keys", help="the owner's keys").add_subparsers(
        dest="keys_command", required=True, metavar="ACTION"
    )

    init = keys.add_parser("init", help="make the owner identity")
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

    export = keys.add_parser("export", help="print the owner identity for 'age -d -i'")
    add_data_dir_option(export)
    export.add_argument("--passphrase-file", metavar="F", help="read the passphrase from F")
    export.set_defaults(func=cmd_keys_export)

    add = keys.add_parser("add-recipient", help="encrypt new clips to another age1… key too")
    add_data_dir_option(add)
    add.add_argument("recipient", metavar="age1…")
    add.add_argument("--comment", help="a note kept beside the key in recipients.txt")
    add.set_defaults(func=cmd_keys_add_recipient)

"""``doorbell check-page URL [--fingerprint SHA256]``: does the doorbell serve this
release's page code?

Run on the owner's computer, with the same doorbell release installed there (and its
``node_modules``): the owner's identity lives in their browser, so the page code the
device serves is what guards it. This command fetches the public page
(``URL/unlock``, or where it redirects on the same device, ``/setup`` before anyone
is paired) and compares it with this release:

- every ``<script>`` must load a file (``src``) or be the one import map
  (``<script type="importmap">``), and that map must equal this release's
  (:func:`doorbell.web.vendor.import_map`); any other inline script, an inline event
  handler (``onclick=``…), a ``<base>``, ``<iframe>``, ``<object>`` or ``<embed>`` is
  a mismatch;
- every ``<script src>`` and ``<link href>`` must name a file of this release on the
  same device (``/static/…`` or ``/vendor/…``);
- every file the page can load, that is each file of this release's
  ``doorbell/web/static/`` and each library file of the release's whitelist
  (``/vendor/<tag>/<path>``, from ``node_modules``), and any other ``/static/`` file the
  page names, is fetched and must have the SHA-256 of the local file.

TLS: the device's certificate is self-signed, so there is no authority to check it
against. With ``--fingerprint`` (the SHA-256 ``doorbell run`` and the status page
show, ``AB:CD:…``) every connection is refused before a request is sent unless the
certificate is that one; without it, the command says which fingerprint it saw, for
the owner to compare.

What it cannot catch: a device that serves different code to the owner's browser than
to this command (told apart by address, cookie, user agent or time: a device whose
software was replaced can do that at will); pages behind login, except through the
files they share with the public page (all of this release's static and library
files are checked, whichever page loads them); code already kept in the browser's
cache; and a release installed on this computer that is not the genuine one. It
checks what the device serves now, to this command: it raises the cost of a quiet
change, it does not prove the device honest.

The comparison is :mod:`doorbell.page_check`, imported only when the command runs.
"""

import argparse

# -- the command ----------------------------------------------------------------------


def cmd_check_page(args: argparse.Namespace) -> int:
    """Compare what the doorbell at ``args.url`` serves with this release; print one
    line if all match (exit 0), else one line a mismatch (exit 1).

    Raises UsageError for a bad URL or fingerprint, PageCheckError if the device
    cannot be reached, its certificate is not the given one, or this release's
    node_modules is missing here."""
    from doorbell.page_check import (
        Device,
        compare,
        local_release,
        normalise_fingerprint,
        parse_page,
        shown_fingerprint,
    )

    fingerprint = normalise_fingerprint(args.fingerprint) if args.fingerprint else None
    device = Device(args.url, fingerprint)
    release = local_release()
    path, text = device.page()
    if device.seen and not fingerprint:
        print(
            f"page check: the device's certificate is SHA-256 {shown_fingerprint(device.seen)}: "
            "compare it with the one `doorbell run` or the status page shows (or give "
            "--fingerprint to have it checked)"
        )
    try:
        problems = compare(parse_page(text), release, device.fetch)
    finally:
        device.close()
    if problems:
        for problem in problems:
            print(f"page check: {problem}")
        print(
            f"page check: {device.origin}{path} does not match this release (doorbell {release.version})"
        )
        return 1
    print(f"page check: {len(release.files)} files match this release (doorbell {release.version})")
    return 0


def register(commands: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``check-page`` to the top-level ``commands``."""
    check = commands.add_parser(
        "check-page",
        help="compare the page code a doorbell serves with this release (run on your computer)",
        description="Compare the page, scripts and libraries the doorbell at URL serves "
        "with this release's. It cannot tell whether the device serves other code to "
        "your browser than to this command.",
    )
    check.add_argument("url", metavar="URL", help="the doorbell, e.g. https://doorbell.local:8443")
    check.add_argument(
        "--fingerprint",
        metavar="SHA256",
        help="the certificate's SHA-256 (AB:CD:…) as `doorbell run` and the status page show; "
        "refuse any other certificate",
    )
    check.set_defaults(func=cmd_check_page)

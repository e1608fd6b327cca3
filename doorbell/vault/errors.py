"""Vault errors: one class for each failure the age test vectors distinguish.

=====================  =============================================  ==================
class                  what happened                                   CCTV ``expect``
=====================  =============================================  ==================
HeaderError            the header (or the nonce after it) is malformed ``header failure``
NoIdentityMatchError   no identity we hold opens any recipient stanza  ``no match``
HeaderMacError         a stanza opened but the header MAC is wrong     ``HMAC failure``
PayloadError           payload chunk N fails authentication            ``payload failure``
TruncatedError         the payload ends before its final chunk         ``payload failure``
=====================  =============================================  ==================

Key and passphrase problems outside a file are :class:`KeyFormatError`.
Every message names the file it is about (``source``) and never a secret.
"""

from doorbell.errors import DoorbellError


class VaultError(DoorbellError):
    """A clip, key or age file could not be used.

    ``source`` names the file (or ``-`` for standard input); code that knows
    the name and catches an error without one fills it in before re-raising.
    """

    kind = "vault error"

    def __init__(self, detail: str, source: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.source = source

    def __str__(self) -> str:
        where = f"{self.source}: " if self.source else ""
        return f"{where}{self.kind}: {self.detail}"


class UnfinishedFileError(VaultError, FileExistsError):
    """A ``.part`` of the file is already there: an earlier write did not finish.

    It may hold recoverable video, so it is never overwritten.
    """

    kind = "unfinished file in the way"


class DiskFullError(VaultError, OSError):
    """The disk filled up while writing: the file was ended at its last whole chunk.

    No byte beyond what the failed write freed was needed: the last chunk on
    disk is sealed again, in place, as the final one; if the writer made marks
    (``Writer.mark``), the chunk of the last mark on disk, cut at the mark
    (``at_mark``). ``kept`` is how many plaintext bytes the finished file
    holds; 0 means nothing whole had been written and the file was removed.
    ``errno`` is ENOSPC, so code that handles a full disk in general handles
    this too.
    """

    kind = "disk full"

    def __init__(self, source: str, kept: int, at_mark: bool = False) -> None:
        import errno

        where = "the last point its writer marked whole" if at_mark else "its last whole chunk"
        detail = f"ended early at {where} ({kept} bytes kept)"
        if not kept:
            detail = "nothing whole was written; removed"
        VaultError.__init__(self, detail, source)
        self.errno = errno.ENOSPC
        self.filename = source
        self.kept = kept


class KeyFormatError(VaultError, ValueError):
    """A recipient or identity string is not a valid age key."""

    kind = "bad key"


class HeaderError(VaultError, ValueError):
    """The age header is malformed, unsupported, or asks for too much work."""

    kind = "header failure"


class NoIdentityMatchError(VaultError, LookupError):
    """None of the identities given can open this file."""

    kind = "no matching identity"


class HeaderMacError(VaultError, ValueError):
    """A recipient stanza opened, but the header's MAC does not match: tampered header.

    The message says what that means: no byte of the file may be decrypted."""

    kind = "header MAC failure"

    def __str__(self) -> str:
        return (
            f"{super().__str__()}; its key cannot be trusted, so nothing in it can be "
            "decrypted (a backup copy of the file may be whole)"
        )


class PayloadError(VaultError, ValueError):
    """A payload chunk failed authentication: the file is corrupted or was tampered with.

    ``chunk`` is the index of the chunk that failed and ``offset`` where it starts
    in the file (bytes), when known. The message says both, and how to get back
    the intact part before it (``doorbell decrypt --recover``).
    """

    kind = "payload failure"

    def __init__(
        self,
        detail: str,
        source: str | None = None,
        chunk: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.chunk = chunk
        self.offset = offset
        super().__init__(detail, source)

    def where(self) -> str:
        """Where the damage is, e.g. "chunk 3, at byte 196928 of the file", or ""."""
        if self.chunk is None:
            return ""
        at = f", at byte {self.offset} of the file" if self.offset is not None else ""
        return f"chunk {self.chunk}{at}"

    def remedy(self) -> str:
        """How to get back what is intact before the damage."""
        if self.chunk == 0:
            return "nothing before it is intact"
        name = self.source if self.source and self.source != "-" else "FILE"
        return (
            f"the intact part before it comes back with "
            f"'doorbell decrypt --recover -i IDENTITY -o OUT {name}'"
        )

    def __str__(self) -> str:
        if self.chunk is None:
            return super().__str__()
        return f"{super().__str__()} ({self.where()}); {self.remedy()}"


class TruncatedError(PayloadError):
    """The payload stops before its final chunk: the file was cut short.

    ``authenticated`` is how many plaintext bytes before the cut were checked
    and found intact, when the reader went through them all (streaming), and
    None when it did not (random access checks only the end); ``doorbell
    decrypt --recover`` gives the intact prefix back.
    """

    kind = "truncated"

    def __init__(
        self,
        detail: str,
        source: str | None = None,
        chunk: int | None = None,
        authenticated: int | None = None,
        offset: int | None = None,
    ) -> None:
        self.authenticated = authenticated
        super().__init__(detail, source, chunk, offset)

"""The one exception tree.

Every error the project raises on purpose is a :class:`DoorbellError`. Each
also inherits the builtin it resembles, so callers that know nothing of
doorbell can still catch ``ValueError`` or ``OSError``. Messages name the
problem and the thing (file, key, clip id) and never carry a secret: no
passphrase, no identity, no file key.
"""


class DoorbellError(Exception):
    """Base of every error doorbell raises on purpose."""


class UsageError(DoorbellError, ValueError):
    """The caller asked for something that cannot be done as asked."""

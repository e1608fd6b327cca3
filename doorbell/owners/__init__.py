"""The owners of a doorbell and how they prove it: pairing codes, the owners registry,
login challenges and the throttle on guesses (docs/ARCHITECTURE.md, "Owners")."""

from doorbell.owners.challenge import Challenges
from doorbell.owners.codes import SetupCode
from doorbell.owners.registry import AuthRecord, Owner, Owners, OwnersError, derive_auth
from doorbell.owners.throttle import Throttle, client_key

__all__ = [
    "AuthRecord",
    "Challenges",
    "Owner",
    "Owners",
    "OwnersError",
    "SetupCode",
    "Throttle",
    "client_key",
    "derive_auth",
]

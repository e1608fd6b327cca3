"""Where the benches find real footage: $DOORBELL_FOOTAGE, else ../shared/footage beside
the repository (the same rule as the tests' conftest)."""

import os
import sys
from pathlib import Path

FOOTAGE = Path(
    os.environ.get("DOORBELL_FOOTAGE") or Path(__file__).resolve().parents[2] / "shared" / "footage"
)


def require(bench: str, *names: str) -> None:
    """Exit with status 2, naming what is missing, unless every file in ``names`` is there."""
    missing = [str(FOOTAGE / name) for name in names if not (FOOTAGE / name).exists()]
    if missing:
        print(
            f"{bench}: real footage not found: {', '.join(missing)} "
            "(set DOORBELL_FOOTAGE=DIR to a folder laid out as docs/FOOTAGE.md says)",
            file=sys.stderr,
        )
        raise SystemExit(2)

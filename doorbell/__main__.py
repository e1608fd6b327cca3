"""``python -m doorbell`` is the ``doorbell`` command."""

import sys

from doorbell.cli import main

sys.exit(main())

"""``python -m pinnacle_ray.cli``: the same as the ``pinnacle-ray`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())

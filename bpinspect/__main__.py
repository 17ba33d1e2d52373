"""``python -m bpinspect``: the same as the ``bpinspect`` command."""

import sys

from bpinspect.cli import main

sys.exit(main())

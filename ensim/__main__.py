"""``python -m ensim`` is the ``ensim`` command."""

import sys

from ensim.cli import main

sys.exit(main())

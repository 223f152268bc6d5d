"""``python -m bollard.platform.cli``: the same as the ``bollard`` command."""

import sys

from bollard.platform.cli import main

sys.exit(main())

"""``python -m knowgen`` runs the ``knowgen`` command."""

import sys

from knowgen.cli import main

sys.exit(main())

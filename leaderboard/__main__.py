"""``python -m knowgen.leaderboard``: validate, add, build, seed, schema."""

import sys

from knowgen.leaderboard.cli import main

sys.exit(main())

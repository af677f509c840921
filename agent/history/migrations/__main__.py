"""``python -m agent.history.migrations``: see :func:`start_upgrade_child` (`mlwarden run`)."""

import sys

from agent.history.migrations import _child_main

sys.exit(_child_main())

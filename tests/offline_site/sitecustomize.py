"""Arms the offline guard (tests/offline_guard.py) in a subprocess started with this folder on
PYTHONPATH and OFFLINE_GUARD_LOG set."""

import os
import sys
from pathlib import Path

_log = os.environ.get("OFFLINE_GUARD_LOG")
if _log:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import offline_guard as offline

    sys.path.pop(0)
    offline.install(Path(_log), os.environ.get(offline.ALLOW_VARIABLE, "")).armed = True

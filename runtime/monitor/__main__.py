"""``python -m runtime.monitor``: the analyzer job (:mod:`runtime.monitor.job`)."""

import sys

from runtime.monitor.job import main

sys.exit(main())

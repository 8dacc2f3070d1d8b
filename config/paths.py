"""Where things are in this repository: every path derived from one root.

The configs, the job code the definition ships, the build outputs, the local workspace and the
golden definition. (``tools/`` computes the root itself: it runs with the system Python, outside
the venv, while ``make upgrade`` rebuilds it. The runtime puts its own package's folder on a
job's PYTHONPATH: it knows nothing of this repository.)
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = ROOT / "configs"
BASE_CONFIG = CONFIG_DIR / "base.yaml"
PIPELINE_CONFIG = CONFIG_DIR / "pipeline.yaml"
"""The published pipeline's config (`make definition`, `golden`, `upsert`)."""
LOCAL_CONFIG = CONFIG_DIR / "local.yaml"
"""`make run-local`: the published graph on the built-in data."""
SCRIPTS_DIR = ROOT / "scripts"
"""The job code the definition ships."""
BUILD_DIR = ROOT / "build"
DEFINITION_FILE = BUILD_DIR / "pipeline.json"
LOCAL_WORKSPACE = BUILD_DIR / "local"
"""Local runs' store and state, unless PIPELINE_LOCAL_WORKSPACE names another folder."""
GOLDEN_DIR = ROOT / "tests" / "golden"
GOLDEN_FILE = GOLDEN_DIR / "pipeline.json"
DEPLOY_GOLDEN_DIR = GOLDEN_DIR / "deploy"
"""The deploy requests per stage (`make deploy-golden`)."""

"""`python -m pipelines definition` imports what the build uses and nothing else: not the deploy
package, not the local endpoint, not the local runtime (checked in a new user's bare shell)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from offline_guard import bare_command, bare_env

from config.paths import ROOT
from pipelines import cli

# The build as the CLI runs it, then the project modules off the build path it imported.
DEFINITION = """\
import json, sys
from pipelines import cli
code = cli.main(["definition", "--out", sys.argv[1]])
off_path = ("pipelines.deploy", "pipelines.local", "runtime", "matplotlib", "xgboost", "sklearn")
loaded = sorted(m for m in sys.modules if m.startswith(off_path))
print(json.dumps({"code": code, "loaded": loaded}))
"""


def test_the_definition_build_imports_neither_deploy_nor_the_runtime(tmp_path: Path):
    out = tmp_path / "pipeline.json"
    done = subprocess.run(
        bare_command([sys.executable, "-c", DEFINITION, str(out)]),
        cwd=ROOT,
        env=bare_env(tmp_path / "home", guard=tmp_path / "network-attempts.log"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}
    assert json.loads(out.read_text())["Steps"]
    attempts = tmp_path / "network-attempts.log"
    assert not attempts.exists() or not attempts.read_text(), "the build is offline"


def test_the_build_verbs_parse_alone_and_every_verb_is_listed_in_help():
    """The verbs parsed without the deploy modules are exactly this module's own; help (and
    any other verb) gets the whole parser."""
    own = cli.parser(deploy_verbs=False)._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    every = cli.parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert set(own) == cli.OWN_VERBS
    assert set(every) > cli.OWN_VERBS and {"deploy", "rollback"} <= set(every)

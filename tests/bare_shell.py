"""A new user's shell for the CLI tests: only PATH, LANG and an empty HOME, the offline guard
armed (tests/offline_guard.py), and a count of the SageMaker SDK modules each verb imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from offline_guard import bare_command, bare_env

from config.paths import ROOT

# Runs the CLI, then reports how many SageMaker SDK modules the verb imported.
CLI = """\
import sys
from pipelines import cli
if sys.argv[1:2] == ["--golden-to"]:
    from pathlib import Path
    cli.GOLDEN_FILE = Path(sys.argv[2])
    cli.ROOT = cli.GOLDEN_FILE.parent
    del sys.argv[1:3]
code = cli.main(sys.argv[1:])
loaded = [m for m in sys.modules if m == "sagemaker" or m.startswith("sagemaker.")]
print(f"SDK modules imported: {len(loaded)}", file=sys.stderr)
sys.exit(code)
"""
NO_SDK = "SDK modules imported: 0"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLEEXAMPLE00", "AWS_SECRET_ACCESS_KEY": "x" * 40}


class Shell:
    """A bare shell in `folder`: its own empty HOME, guard log and local workspace."""

    def __init__(self, folder: Path, network: bool = False, allow: str = "", **extra: str):
        self.folder = folder
        self.log = folder / "network-attempts.log"
        self.network = network
        self.env = bare_env(
            folder / "home",
            guard=self.log,
            allow=allow,
            PIPELINE_LOCAL_WORKSPACE=str(folder / "workspace"),
            **extra,
        )

    def command(self, *args: str) -> list[str]:
        return bare_command([sys.executable, "-c", CLI, *args], network=self.network)

    def run(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def attempts(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.is_file() else []


def clean(result: subprocess.CompletedProcess[str]) -> str:
    """The output, after checking it holds no traceback and no region complaint."""
    output = result.stdout + result.stderr
    assert "Traceback" not in output, output
    assert "You must specify a region" not in output, output
    return output

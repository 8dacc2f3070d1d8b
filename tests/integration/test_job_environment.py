"""What a local job sees of the caller's environment: only what running Python needs.

A whole local run (processing, quality check, training, transform jobs) with secrets and
personal settings in the caller's environment; each job process writes its own environment
before it becomes the job (a shim exec'd in front of the job's command), and none of the
caller's values may be there.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from config import load_config
from pipelines.local import run_local
from runtime import jobs
from runtime.jobs import process, sandbox

SENTINELS = {
    "AWS_ACCESS_KEY_ID": "AKIASENTINEL00000000",
    "AWS_SECRET_ACCESS_KEY": "sentinel-secret-access-key",
    "AWS_SESSION_TOKEN": "sentinel-session-token",
    "AWS_PROFILE": "sentinel-profile",
    "AWS_CONFIG_FILE": "/sentinel/aws/config",
    "AWS_SHARED_CREDENTIALS_FILE": "/sentinel/aws/credentials",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.2/sentinel",
    "GITHUB_TOKEN": "ghp_sentinel",
    "DATABASE_URL": "postgres://user:sentinel@db/prod",
    "SSH_AUTH_SOCK": "/sentinel/agent.sock",
    "HOME": "/sentinel/home",
    "PYTHONPATH": "/sentinel/lib",
    "SM_HOSTS": '["sentinel-host"]',
}
KEPT = {"LANG": "C.UTF-8", "TZ": "UTC", "OMP_NUM_THREADS": "1", "LC_TIME": "C"}
# Runs as the job's process: writes what it was given, then becomes the job's command.
SHIM = """\
import json, os, sys
with open(os.path.join(sys.argv[1], f"{os.getpid()}.json"), "w") as out:
    json.dump({"cwd": os.getcwd(), "argv": sys.argv[2:], "env": dict(os.environ)}, out)
os.execv(sys.argv[2], sys.argv[2:])
"""


def test_the_hosts_thread_wait_policy_passes_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert sandbox._base_env(tmp_path)["OMP_WAIT_POLICY"] == "ACTIVE"
    monkeypatch.delenv("OMP_WAIT_POLICY")
    assert sandbox._base_env(tmp_path)["OMP_WAIT_POLICY"] == "PASSIVE"


def step_of(seen: dict[str, Any]) -> str:
    parts = Path(seen["cwd"]).parts
    return parts[parts.index("steps") + 1]


def test_jobs_get_an_allowlisted_environment_and_a_home_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, build, small_run_config: Path
) -> None:
    cfg = load_config(small_run_config, env={})
    built = build(cfg)
    for name, value in {**SENTINELS, **KEPT}.items():
        monkeypatch.setenv(name, value)
    seen_dir = tmp_path / "seen"
    seen_dir.mkdir()
    launch = process.run_command

    def through_shim(argv: list[str], **kwargs: Any) -> jobs.CommandResult:
        return launch([sys.executable, "-c", SHIM, str(seen_dir), *argv], **kwargs)

    monkeypatch.setattr(process, "run_command", through_shim)
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    workspace = tmp_path / "ws"
    run = run_local(cfg, built, workspace=workspace, quiet=True)
    assert run.execution.status == "Succeeded", run.execution.failure_reason

    seen = {}
    for path in seen_dir.glob("*.json"):
        document = json.loads(path.read_text())
        seen[step_of(document)] = document
    kinds = {
        "Profile", "Preprocess", "FitTransformer", "DataQuality", "Train", "Evaluate", "BatchScore"
    }  # fmt: skip
    assert set(seen) == kinds, sorted(seen)
    for step, document in seen.items():
        env: dict[str, str] = document["env"]
        leaked = {k: v for k, v in env.items() if k in SENTINELS and v == SENTINELS[k]}
        leaked |= {k: v for k, v in env.items() if any(s in v for s in SENTINELS.values())}
        assert not leaked, f"{step} got the caller's {sorted(leaked)}"
        assert not any(key.startswith("AWS_") for key in env), (step, sorted(env))
        sandbox = Path(document["cwd"])
        while sandbox.name and not sandbox.name.startswith("attempt-"):
            sandbox = sandbox.parent
        assert Path(env["HOME"]).parent == sandbox and Path(env["HOME"]).is_dir(), step
        for name, value in KEPT.items():
            assert env.get(name) == value, (step, name)
        # Jobs share the host's cores: OpenMP threads sleep while they wait (the host's
        # own choice, had it made one, would pass through like the thread counts).
        assert env.get("OMP_WAIT_POLICY") == "PASSIVE", step
    assert seen["Train"]["env"]["SM_MODEL_DIR"].endswith("/opt/ml/model")
    assert seen["Train"]["env"]["TRAINING_JOB_NAME"]
    assert seen["BatchScore"]["env"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert json.loads(seen["DataQuality"]["env"]["dataset_format"])["csv"]["header"] is True
    # The quality check runs through the processing-job launcher, like the other jobs: the
    # local analyzer is the entrypoint of a CreateProcessingJob request.
    assert seen["DataQuality"]["argv"][1:3] == ["-m", "runtime.monitor"]

"""The deploy verbs as a new user runs them: a bare shell (no AWS settings, an empty HOME, no
network but what the test serves), against moto's HTTP server where AWS is needed. (Without
credentials, and offline, they are among tests/integration/test_environment.py's AWS verbs.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import yaml
from bare_shell import FAKE_CREDENTIALS, NO_SDK, Shell, clean
from deploy_support import Model, register
from offline_guard import bare_command

from config import PIPELINE_CONFIG, load_config
from config.paths import DEPLOY_GOLDEN_DIR, ROOT


def test_bad_input_is_refused_before_aws_is_asked(tmp_path: Path) -> None:
    shell = Shell(tmp_path)
    unknown = shell.run("deploy", "--stage", "qa")
    assert unknown.returncode == 2, clean(unknown)
    assert "no stage 'qa' in deploy.stages; the config defines ['prod', 'staging']" in (
        unknown.stderr
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"extends": str(PIPELINE_CONFIG), "deploy": {"stages": {
        "prod": {"instance_count": 1}}}}))  # fmt: skip
    refused = shell.run("deploy", "--stage", "prod", "--config", str(bad))
    assert refused.returncode == 2, clean(refused)
    assert "deploy.stages.prod" in refused.stderr and "no step fits" in refused.stderr
    assert "Traceback" not in refused.stderr and shell.attempts() == []


def test_golden_requests_are_regenerated_offline(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from pipelines import cli\n"
        "from config import paths\n"
        "paths.DEPLOY_GOLDEN_DIR = Path(sys.argv[1])\n"
        "sys.exit(cli.main(['deploy-golden']))\n"
    )
    shell = Shell(tmp_path)
    out = tmp_path / "golden"
    result = subprocess.run(
        bare_command([sys.executable, "-c", script, str(out)]),
        cwd=ROOT, env=shell.env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, clean(result)
    assert shell.attempts() == []
    written = {p.name: p.read_text() for p in out.glob("*.json")}
    assert written == {p.name: p.read_text() for p in DEPLOY_GOLDEN_DIR.glob("*.json")}


def queue_answers(endpoint: str, answers: list[bytes]) -> None:
    """What moto's server answers to the next InvokeEndpoint calls (its static results)."""
    import urllib.request

    body = json.dumps({"results": [{"Body": a.decode(), "ContentType": "text/csv",
                                    "InvokedProductionVariant": "AllTraffic",
                                    "CustomAttributes": ""} for a in answers]})  # fmt: skip
    request = urllib.request.Request(
        f"{endpoint}/moto-api/static/sagemaker/endpoint-results",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - local moto
        assert response.status == 201


def test_deploy_status_smoke_and_undeploy_against_moto_server(
    moto_server: str, job_served: Model, tmp_path: Path
) -> None:
    endpoint = f"http://{moto_server}"
    config = tmp_path / "stages.yaml"
    # moto's server keeps one answer per request body whatever the endpoint (it does not read
    # the endpoint's name from the path): the second stage sends fewer rows, another body.
    config.write_text(yaml.safe_dump({"extends": str(PIPELINE_CONFIG), "deploy": {"stages": {
        "check": {"endpoint_name": "tabular-xgboost-check", "smoke": {"rows": 5}}}}}))  # fmt: skip
    cfg = load_config(config, env={})
    setup = boto3.Session(region_name=cfg.aws.region, aws_access_key_id="AKIAEXAMPLEEXAMPLE00",
                          aws_secret_access_key="x" * 40)  # fmt: skip
    s3 = setup.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket=cfg.aws.bucket)

    class Remote:  # register() makes its clients from a session: point them at the server
        def client(self, service: str) -> object:
            return setup.client(service, endpoint_url=endpoint)

    served = job_served
    register(Remote(), cfg, served.sample)  # type: ignore[arg-type]
    sample = served.sample
    body = sample["records"].encode()
    queue_answers(endpoint, [served.handler(body, "text/csv", "text/csv")])
    shell = Shell(tmp_path, network=True, allow=moto_server, AWS_ENDPOINT_URL=endpoint,
                  **FAKE_CREDENTIALS)  # fmt: skip
    args = ("--config", str(config))

    planned = shell.run("deploy", "--stage", "staging", "--dry-run", *args)
    assert planned.returncode == 0, clean(planned)
    assert "dry run: nothing was changed" in planned.stdout and NO_SDK in planned.stderr
    deployed = shell.run("deploy", "--stage", "staging", *args)
    assert deployed.returncode == 0, clean(deployed)
    assert "smoke test passed: 20 row(s) answered as the pipeline predicted" in deployed.stdout
    status = shell.run("status", "--stage", "staging", *args)
    assert status.returncode == 0, clean(status)
    assert "InService" in status.stdout and "v1    deploy" in status.stdout
    again = shell.run("smoke", "--stage", "staging", *args)  # the same rows, the same answer
    assert again.returncode == 0 and "smoke test passed" in again.stdout, clean(again)

    wrong = "".join(f"{1 - p:.9g}\n" for p in sample["predictions"][:5]).encode()
    queue_answers(endpoint, [wrong])
    failed = shell.run("deploy", "--stage", "check", *args)
    assert failed.returncode == 1, clean(failed)
    assert "smoke test FAILED" in failed.stderr and "nothing is deployed" in failed.stderr

    removed = shell.run("undeploy", "--stage", "staging", *args)
    assert removed.returncode == 0, clean(removed)
    sagemaker = setup.client("sagemaker", endpoint_url=endpoint)
    assert sagemaker.list_endpoints()["Endpoints"] == []
    cloudwatch = setup.client("cloudwatch", endpoint_url=endpoint)
    assert [a["AlarmName"] for a in cloudwatch.describe_alarms()["MetricAlarms"]
            if a["AlarmName"].startswith("tabular-xgboost-staging")] == []  # fmt: skip
    assert shell.attempts() == []

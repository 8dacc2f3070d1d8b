"""runtime.jobs: processing, training and transform jobs as host processes in a sandbox.

Every job runs a tiny script written here (never the project's scripts/), against a LocalS3
store under tmp_path.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
import tarfile
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator

from runtime.jobs import (
    JobStatus,
    container_path,
    map_container_value,
    process,
    run_command,
    run_processing_job,
    run_training_job,
    run_transform_job,
)
from runtime.jobs.contract import HOSTS_DIR
from runtime.store import LocalS3

BUCKET = "s3://bucket"
MB = 1024 * 1024


def _store(tmp_path: Path) -> LocalS3:
    return LocalS3(tmp_path / "s3")


def _put_text(store: LocalS3, uri: str, text: str) -> None:
    store.put_bytes(uri, textwrap.dedent(text).encode("utf-8"))


def _tar_gz(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            payload = textwrap.dedent(text).encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return buffer.getvalue()


def _gone(pid: int, within: float = 5.0) -> bool:
    """True once ``pid`` no longer runs (absent, or a zombie waiting for init to reap it)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except FileNotFoundError:
            return True
        if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
            return True
        time.sleep(0.05)
    return False


def _processing_request(script_uri: str, arguments: list[str], **extra: object) -> dict:
    request = {
        "AppSpecification": {
            "ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4",
            "ContainerEntrypoint": ["python3", "/opt/ml/processing/input/code/job.py"],
            "ContainerArguments": arguments,
        },
        "ProcessingInputs": [
            {
                "InputName": "code",
                "S3Input": {
                    "S3Uri": script_uri,
                    "LocalPath": "/opt/ml/processing/input/code",
                    "S3DataType": "S3Prefix",
                    "S3InputMode": "File",
                },
            }
        ],
        "ProcessingOutputConfig": {
            "Outputs": [
                {
                    "OutputName": "result",
                    "S3Output": {
                        "S3Uri": f"{BUCKET}/out/result",
                        "LocalPath": "/opt/ml/processing/output/result",
                        "S3UploadMode": "EndOfJob",
                    },
                }
            ]
        },
        "ProcessingResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 30,
            }
        },
        "RoleArn": "arn:aws:iam::000000000000:role/test",
    }
    request.update(extra)
    return request


# --------------------------------------------------------------------------- paths


def test_container_paths_map_into_the_sandbox_and_leave_other_values_alone(tmp_path: Path):
    sandbox = tmp_path / "box"
    assert container_path(sandbox, "/opt/ml/processing/input") == (
        sandbox / "opt" / "ml" / "processing" / "input"
    )
    assert map_container_value(sandbox, "/opt/ml/model") == str(sandbox / "opt/ml/model")
    for value in ("--model-dir", "0.3", "s3://bucket/opt/ml/x", "/opt/mlx/y", "/tmp/opt/ml/"):
        assert map_container_value(sandbox, value) == value
    for bad in ("/etc/passwd", "/opt/ml/../../etc", "opt/ml/model"):
        with pytest.raises(ValueError, match="not a container path"):
            container_path(sandbox, bad)


# --------------------------------------------------------------------------- run_command


def test_peak_rss_is_the_childs_own(tmp_path: Path):
    allocate = "data = b'x' * (200 * 1024 * 1024); print(len(data))"
    big = run_command(
        [sys.executable, "-c", allocate],
        env=dict(os.environ),
        cwd=tmp_path,
        log_path=tmp_path / "big.log",
        timeout_seconds=60,
    )
    assert big.returncode == 0 and not big.timed_out
    assert big.peak_rss_bytes >= 150 * MB
    assert (tmp_path / "big.log").read_text().strip() == str(200 * MB)
    # A small child reports its own peak: not the largest child's so far (RUSAGE_CHILDREN), and
    # not the RSS of this (now large) process it was started from.
    ballast = b"y" * (200 * MB)
    small = run_command(
        [sys.executable, "-c", "import sys; print('ERROR: tiny', file=sys.stderr)"],
        env=dict(os.environ),
        cwd=tmp_path,
        log_path=tmp_path / "small.log",
        timeout_seconds=60,
    )
    assert 0 < small.peak_rss_bytes < 100 * MB < len(ballast)
    assert small.stderr_tail == ["ERROR: tiny"]
    missing = run_command(
        ["no-such-program-xyz"],
        env=dict(os.environ),
        cwd=tmp_path,
        log_path=tmp_path / "missing.log",
        timeout_seconds=None,
    )
    assert missing.returncode == 127
    assert missing.stderr_tail == [
        "ERROR: cannot run 'no-such-program-xyz': No such file or directory"
    ]


def test_keyboard_interrupt_stops_the_job_and_is_re_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(process, "KILL_GRACE_SECONDS", 0.5)
    pid_file = tmp_path / "pid.txt"
    script = (
        "import os, pathlib, time; "
        f"pathlib.Path({str(pid_file)!r}).write_text(str(os.getpid())); time.sleep(120)"
    )
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def interrupt() -> None:
        deadline = time.monotonic() + 10
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        signal.pthread_kill(main_thread, signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_command(
            [sys.executable, "-c", script],
            env=dict(os.environ),
            cwd=tmp_path,
            log_path=tmp_path / "job.log",
            timeout_seconds=None,
        )
    assert time.monotonic() - started < 15
    assert _gone(int(pid_file.read_text()))


# --------------------------------------------------------------------------- processing

PROCESSING_SCRIPT = """
import argparse, json, os, sys
from pathlib import Path

parser = argparse.ArgumentParser()
parser.add_argument("--input")
parser.add_argument("--extra")
parser.add_argument("--output")
parser.add_argument("--label")
args = parser.parse_args()
source = Path(args.input)
report = {
    "argv": sys.argv[1:],
    "python": sys.executable,
    "files": sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file()),
    "first": (source / "a.csv").read_text(),
    "extra": (Path(args.extra) / "extra.txt").read_text(),
    "setting": os.environ.get("MY_SETTING"),
    "env_dir_exists": Path(os.environ["MY_DIR"]).is_dir(),
    "secret": os.environ.get("AWS_SECRET_ACCESS_KEY"),
}
print("processed", len(report["files"]), "files")
Path(args.output, "nested").mkdir(parents=True)
Path(args.output, "nested", "report.json").write_text(json.dumps(report))
"""


def test_processing_job_round_trip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "must-not-leak")
    store = _store(tmp_path)
    _put_text(store, f"{BUCKET}/code/job.py", PROCESSING_SCRIPT)
    _put_text(store, f"{BUCKET}/raw/a.csv", "x,y\n1,2\n")
    _put_text(store, f"{BUCKET}/raw/sub/b.csv", "x,y\n3,4\n")
    host_dir = tmp_path / "host"
    host_dir.mkdir()
    (host_dir / "extra.txt").write_text("from the host")
    request = _processing_request(
        f"{BUCKET}/code/job.py",
        [
            "--input",
            "/opt/ml/processing/input/raw",
            "--extra",
            "/opt/ml/processing/input/extra",
            "--output",
            "/opt/ml/processing/output/result",
            "--label",
            "plain-value",
        ],  # fmt: skip
        Environment={"MY_SETTING": "42", "MY_DIR": "/opt/ml/processing/input/raw"},
        StoppingCondition={"MaxRuntimeInSeconds": 120},
    )
    request["ProcessingInputs"] += [
        {
            "InputName": "raw",
            "S3Input": {"S3Uri": f"{BUCKET}/raw", "LocalPath": "/opt/ml/processing/input/raw"},
        },
        {
            "InputName": "extra",
            "S3Input": {
                "S3Uri": (host_dir / "extra.txt").as_uri(),
                "LocalPath": "/opt/ml/processing/input/extra",
            },
        },
    ]
    sandbox = tmp_path / "sandbox"

    outcome = run_processing_job("Preprocess-ABC", request, store, sandbox)

    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    assert outcome.failure_reason is None
    assert [o.relative for o in store.objects(f"{BUCKET}/out/result")] == ["nested/report.json"]
    report = json.loads(store.path(f"{BUCKET}/out/result/nested/report.json").read_text())
    raw_dir = str(sandbox / "opt/ml/processing/input/raw")
    assert report["argv"] == [
        "--input", raw_dir,
        "--extra", str(sandbox / "opt/ml/processing/input/extra"),
        "--output", str(sandbox / "opt/ml/processing/output/result"),
        "--label", "plain-value",
    ]  # fmt: skip
    assert report["python"] == sys.executable
    assert report["files"] == ["a.csv", "sub/b.csv"]
    assert report["first"] == "x,y\n1,2\n"
    assert report["extra"] == "from the host"
    assert report["setting"] == "42" and report["env_dir_exists"] is True
    assert report["secret"] is None
    assert "processed 2 files" in outcome.log_path.read_text()
    assert outcome.seconds > 0 and outcome.peak_rss_bytes > 0

    describe = outcome.describe
    assert describe["ProcessingJobName"] == "Preprocess-ABC"
    assert describe["ProcessingJobArn"] == (
        "arn:aws:sagemaker:eu-west-1:000000000000:processing-job/preprocess-abc"
    )
    assert describe["ProcessingJobStatus"] == "Completed"
    assert describe["ProcessingOutputConfig"] == request["ProcessingOutputConfig"]
    assert describe["ProcessingInputs"] == request["ProcessingInputs"]
    assert describe["AppSpecification"] == request["AppSpecification"]
    assert "FailureReason" not in describe
    start = datetime.fromisoformat(describe["ProcessingStartTime"])
    assert datetime.fromisoformat(describe["ProcessingEndTime"]) >= start


FAILING_SCRIPTS = {
    "error-line": (
        """
        import sys
        print("loading train.csv")
        print("ERROR: column 'price' is missing from train.csv; add it", file=sys.stderr)
        sys.exit(1)
        """,
        "column 'price' is missing from train.csv; add it",
    ),
    "message-file": (
        """
        import sys
        from pathlib import Path
        Path(sys.argv[2]).write_text("ValueError: no rows left after filtering")
        print("ERROR: not this one", file=sys.stderr)
        sys.exit(3)
        """,
        "ValueError: no rows left after filtering",
    ),
    "traceback": (
        """
        raise ValueError("boom")
        """,
        "AlgorithmError: ValueError: boom, exit code: 1",
    ),
    # SageMaker reads a processing job's /opt/ml/output/message (its ExitMessage), not the
    # training jobs' /opt/ml/output/failure: a reason written there would be lost on AWS.
    "failure-file-is-for-training": (
        """
        import sys
        from pathlib import Path
        Path(sys.argv[2]).with_name("failure").write_text("only training jobs read this")
        print("ERROR: the reason SageMaker shows", file=sys.stderr)
        sys.exit(2)
        """,
        "the reason SageMaker shows",
    ),
    "long-message": (
        """
        import sys
        from pathlib import Path
        Path(sys.argv[2]).write_text("x" * 1500)
        sys.exit(2)
        """,
        "x" * 1024,
    ),
}


@pytest.mark.parametrize("case", sorted(FAILING_SCRIPTS))
def test_failing_processing_job_reports_its_reason_and_uploads_nothing(tmp_path: Path, case: str):
    script, reason = FAILING_SCRIPTS[case]
    # Every script first writes into its output dir: a failed job must not publish it.
    preamble = "import sys\nfrom pathlib import Path\nPath(sys.argv[1], 'part.csv').write_text('x')"
    store = _store(tmp_path)
    _put_text(store, f"{BUCKET}/code/job.py", preamble + textwrap.dedent(script))
    request = _processing_request(
        f"{BUCKET}/code/job.py", ["/opt/ml/processing/output/result", "/opt/ml/output/message"]
    )

    outcome = run_processing_job("failing", request, store, tmp_path / "sandbox")

    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason == reason
    assert outcome.describe["ProcessingJobStatus"] == "Failed"
    assert outcome.describe["FailureReason"] == reason
    assert store.objects(f"{BUCKET}/out/result") == []


def test_processing_job_with_missing_input_fails_before_running(tmp_path: Path):
    store = _store(tmp_path)
    request = _processing_request(f"{BUCKET}/code/missing.py", [])

    outcome = run_processing_job("no-code", request, store, tmp_path / "sandbox")

    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason.startswith("ClientError: ProcessingInputs[0] (code): no objects")
    assert f"{BUCKET}/code/missing.py" in outcome.failure_reason
    assert outcome.seconds == 0 and outcome.log_path.is_file()


def test_processing_timeout_kills_the_whole_process_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(process, "KILL_GRACE_SECONDS", 0.5)
    pids = tmp_path / "pids.txt"
    # Ignores SIGTERM (and so does its grandchild, which inherits that): only SIGKILL ends them.
    script = f"""
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    with open({str(pids)!r}, "w") as f:
        f.write(f"{{os.getpid()}} {{child.pid}}")
    time.sleep(120)
    """
    store = _store(tmp_path)
    _put_text(store, f"{BUCKET}/code/job.py", script)
    request = _processing_request(
        f"{BUCKET}/code/job.py", [], StoppingCondition={"MaxRuntimeInSeconds": 2}
    )

    started = time.monotonic()
    outcome = run_processing_job("sleepy", request, store, tmp_path / "sandbox")
    elapsed = time.monotonic() - started

    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason == (
        "MaxRuntimeExceeded: the job ran longer than MaxRuntimeInSeconds=2"
    )
    assert elapsed < 15
    job_pid, grandchild_pid = (int(p) for p in pids.read_text().split())
    assert _gone(job_pid) and _gone(grandchild_pid)
    assert store.objects(f"{BUCKET}/out/result") == []


# --------------------------------------------------------------------------- training

TRAIN_SCRIPT = """
import argparse, json, os, sys
from pathlib import Path

from helper import describe_dir

parser = argparse.ArgumentParser()
parser.add_argument("--eta", type=float)
parser.add_argument("--max_depth", type=int)
parser.add_argument("--objective")
args = parser.parse_args()
model_dir = Path(os.environ["SM_MODEL_DIR"])
config = Path(os.environ["SM_INPUT_CONFIG_DIR"])
seen = {
    "argv": sys.argv[1:],
    "args": vars(args),
    "cwd": os.getcwd(),
    "hyperparameters_json": json.loads((config / "hyperparameters.json").read_text()),
    "resourceconfig": json.loads((config / "resourceconfig.json").read_text()),
    "inputdataconfig": json.loads((config / "inputdataconfig.json").read_text()),
    "channels": json.loads(os.environ["SM_CHANNELS"]),
    "train": describe_dir(os.environ["SM_CHANNEL_TRAIN"]),
    "validation": describe_dir(os.environ["SM_CHANNEL_VALIDATION"]),
    "hps": json.loads(os.environ["SM_HPS"]),
    "hp_eta": os.environ["SM_HP_ETA"],
    "user_args": json.loads(os.environ["SM_USER_ARGS"]),
    "training_env": json.loads(os.environ["SM_TRAINING_ENV"]),
    "module_name": os.environ["SM_MODULE_NAME"],
    "num_gpus": os.environ["SM_NUM_GPUS"],
    "hosts": json.loads(os.environ["SM_HOSTS"]),
}
for auc in (0.71, 0.85, 0.91):
    print(f"[epoch] train-loss={1 - auc:.2f} validation-auc: {auc}")
(model_dir / "weights").mkdir()
(model_dir / "weights" / "w.bin").write_bytes(b"\\x00\\x01")
(model_dir / "seen.json").write_text(json.dumps(seen))
Path(os.environ["SM_OUTPUT_DATA_DIR"], "metrics.json").write_text('{"auc": 0.91}')
"""

HELPER = """
from pathlib import Path


def describe_dir(path):
    root = Path(path)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
"""


def _training_request(store: LocalS3, code: dict[str, str], **hyperparameters: str) -> dict:
    store.put_bytes(f"{BUCKET}/code/sourcedir.tar.gz", _tar_gz(code))
    _put_text(store, f"{BUCKET}/data/train/part-0.csv", "1,0\n")
    _put_text(store, f"{BUCKET}/data/train/part-1.csv", "0,1\n")
    _put_text(store, f"{BUCKET}/data/validation.csv", "1,1\n")
    return {
        "AlgorithmSpecification": {
            "TrainingImage": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "TrainingInputMode": "File",
            "MetricDefinitions": [
                {"Name": "validation:auc", "Regex": r"validation-auc: ([0-9.]+)"},
                {"Name": "never:seen", "Regex": r"never-printed=([0-9.]+)"},
            ],
        },
        "HyperParameters": {
            "sagemaker_program": '"train.py"',
            "sagemaker_submit_directory": f'"{BUCKET}/code/sourcedir.tar.gz"',
            **hyperparameters,
        },
        "InputDataConfig": [
            {
                "ChannelName": "train",
                "DataSource": {
                    "S3DataSource": {"S3Uri": f"{BUCKET}/data/train", "S3DataType": "S3Prefix"}
                },
                "ContentType": "text/csv",
            },
            {
                "ChannelName": "validation",
                "DataSource": {
                    "S3DataSource": {
                        "S3Uri": f"{BUCKET}/data/validation.csv",
                        "S3DataType": "S3Prefix",
                    }
                },
            },
        ],
        "OutputDataConfig": {"S3OutputPath": f"{BUCKET}/models/"},
        "ResourceConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.xlarge"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 300},
        "RoleArn": "arn:aws:iam::000000000000:role/test",
    }


def test_training_job_script_mode_round_trip(tmp_path: Path):
    store = _store(tmp_path)
    request = _training_request(
        store,
        {"train.py": TRAIN_SCRIPT, "helper.py": HELPER},
        eta="0.3",
        max_depth="3",
        objective='"binary:logistic"',
    )
    sandbox = tmp_path / "sandbox"

    outcome = run_training_job("Train-1", request, store, sandbox)

    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    model_uri = f"{BUCKET}/models/Train-1/output/model.tar.gz"
    assert outcome.describe["ModelArtifacts"] == {"S3ModelArtifacts": model_uri}
    with tarfile.open(store.path(model_uri)) as tar:
        assert tar.getnames() == ["seen.json", "weights", "weights/w.bin"]
        seen = json.loads(tar.extractfile("seen.json").read())
        assert tar.extractfile("weights/w.bin").read() == b"\x00\x01"
    with tarfile.open(store.path(f"{BUCKET}/models/Train-1/output/output.tar.gz")) as tar:
        assert tar.getnames() == ["metrics.json"]

    args = ["--eta", "0.3", "--max_depth", "3", "--objective", "binary:logistic"]
    assert seen["argv"] == args and seen["user_args"] == args
    assert seen["args"] == {"eta": 0.3, "max_depth": 3, "objective": "binary:logistic"}
    assert seen["cwd"] == str(sandbox / "opt/ml/code")
    assert seen["hyperparameters_json"] == request["HyperParameters"]
    assert seen["hps"] == {"eta": 0.3, "max_depth": 3, "objective": "binary:logistic"}
    assert seen["hp_eta"] == "0.3"
    assert seen["channels"] == ["train", "validation"]
    assert seen["train"] == ["part-0.csv", "part-1.csv"]
    assert seen["validation"] == ["validation.csv"]
    assert seen["resourceconfig"]["current_host"] == "algo-1"
    assert seen["resourceconfig"]["hosts"] == ["algo-1"] == seen["hosts"]
    assert seen["inputdataconfig"]["train"]["ContentType"] == "text/csv"
    assert seen["training_env"]["model_dir"] == str(sandbox / "opt/ml/model")
    assert seen["training_env"]["channel_input_dirs"]["train"] == str(
        sandbox / "opt/ml/input/data/train"
    )
    assert seen["module_name"] == "train" and seen["num_gpus"] == "0"

    describe = outcome.describe
    assert describe["TrainingJobStatus"] == "Completed"
    assert describe["TrainingJobArn"].endswith(":training-job/train-1")
    assert describe["HyperParameters"] == request["HyperParameters"]
    assert [(m["MetricName"], m["Value"]) for m in describe["FinalMetricDataList"]] == [
        ("validation:auc", 0.91)
    ]


def test_training_failure_reason_comes_from_the_failure_file(tmp_path: Path):
    script = """
    import os, sys
    from pathlib import Path
    Path(os.environ["SM_MODEL_DIR"], "partial.bin").write_bytes(b"x")
    Path(os.environ["SM_OUTPUT_DIR"], "failure").write_text("ValueError: train channel is empty")
    print("ERROR: a later line that is not the reason", file=sys.stderr)
    sys.exit(1)
    """
    store = _store(tmp_path)
    request = _training_request(store, {"train.py": script})

    outcome = run_training_job("broken", request, store, tmp_path / "sandbox")

    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason == "ValueError: train channel is empty"
    assert outcome.describe["FailureReason"] == "ValueError: train channel is empty"
    assert store.objects(f"{BUCKET}/models/broken") == []


def test_training_without_sagemaker_program_is_refused(tmp_path: Path):
    store = _store(tmp_path)
    request = _training_request(store, {"train.py": "print('never runs')"})
    del request["HyperParameters"]["sagemaker_program"]

    outcome = run_training_job("builtin", request, store, tmp_path / "sandbox")

    assert outcome.status is JobStatus.FAILED
    assert "built-in algorithm mode is not supported" in outcome.failure_reason
    assert "never runs" not in outcome.log_path.read_text()


def test_unsafe_source_archive_is_refused(tmp_path: Path):
    store = _store(tmp_path)
    request = _training_request(store, {"train.py": "print('hi')", "../escape.py": "x = 1"})

    outcome = run_training_job("unsafe", request, store, tmp_path / "sandbox")

    assert outcome.status is JobStatus.FAILED
    assert "unsafe member '../escape.py'" in outcome.failure_reason
    assert not (tmp_path / "sandbox/opt/ml/escape.py").exists()


# --------------------------------------------------------------------------- transform

INFERENCE = """
import os


def model_fn(model_dir):
    with open(os.path.join(model_dir, "multiplier.txt")) as f:
        return float(f.read())


def input_fn(body, content_type):
    return [[float(x) for x in line.split(",")] for line in body.splitlines() if line]


def predict_fn(rows, multiplier):
    return [sum(row) * multiplier for row in rows]


def output_fn(predictions, accept):
    return "".join(f"{p}\\n" for p in predictions)
"""


def test_transform_job_round_trip(tmp_path: Path):
    transform = pytest.importorskip("runtime.serving.batch")
    assert not hasattr(transform, "FAILURE_REASON_ENV")  # one name: tabular.contract's
    store = _store(tmp_path)
    model_uri = f"{BUCKET}/models/train/output/model.tar.gz"
    store.put_bytes(model_uri, _tar_gz({"multiplier.txt": "2", "code/inference.py": INFERENCE}))
    _put_text(store, f"{BUCKET}/batch/in/part-1.csv", "1,2\n3,4\n")
    _put_text(store, f"{BUCKET}/batch/in/more/part-2.csv", "5,5\n")
    model = {
        "ModelName": "scorer",
        "PrimaryContainer": {
            "Image": "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1",
            "ModelDataUrl": model_uri,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
            },
        },
    }
    request = {
        "ModelName": "scorer",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3Uri": f"{BUCKET}/batch/in", "S3DataType": "S3Prefix"}
            },
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {
            "S3OutputPath": f"{BUCKET}/batch/out",
            "Accept": "text/csv",
            "AssembleWith": "Line",
        },
        "DataProcessing": {"JoinSource": "Input"},
        "TransformResources": {"InstanceCount": 1, "InstanceType": "ml.m5.large"},
    }

    outcome = run_transform_job("Score-1", request, model, store, tmp_path / "sandbox")

    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    out = f"{BUCKET}/batch/out"
    assert store.path(f"{out}/part-1.csv.out").read_text() == "1,2,6.0\n3,4,14.0\n"
    assert store.path(f"{out}/more/part-2.csv.out").read_text() == "5,5,20.0\n"
    describe = outcome.describe
    assert describe["TransformJobStatus"] == "Completed"
    assert describe["TransformJobArn"].endswith(":transform-job/score-1")
    assert describe["ModelName"] == "scorer"
    assert describe["TransformOutput"] == request["TransformOutput"]


def test_failing_transform_job_reports_the_runtime_error(tmp_path: Path):
    pytest.importorskip("runtime.serving.batch")
    store = _store(tmp_path)
    model_uri = f"{BUCKET}/model.tar.gz"
    broken = INFERENCE.replace(
        "return [sum(row) * multiplier for row in rows]", "raise KeyError('no such feature')"
    )
    store.put_bytes(model_uri, _tar_gz({"multiplier.txt": "2", "code/inference.py": broken}))
    _put_text(store, f"{BUCKET}/batch/in/part-1.csv", "1,2\n")
    model = {
        "ModelName": "scorer",
        "PrimaryContainer": {
            "Image": "image",
            "ModelDataUrl": model_uri,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py"},
        },
    }
    request = {
        "ModelName": "scorer",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3Uri": f"{BUCKET}/batch/in"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": f"{BUCKET}/batch/out", "AssembleWith": "Line"},
    }

    outcome = run_transform_job("score-broken", request, model, store, tmp_path / "sandbox")

    assert outcome.status is JobStatus.FAILED
    assert "predict_fn raised KeyError" in outcome.failure_reason
    assert "no such feature" in outcome.failure_reason
    assert store.objects(f"{BUCKET}/batch/out") == []


HOST_SCRIPT = """
import json, os, sys, time
from pathlib import Path

config = json.loads(Path(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json").read_text())
host = config["current_host"]
train = Path(os.environ["SM_CHANNEL_TRAIN"])
seen = {
    "host": host,
    "hosts": config["hosts"],
    "env_host": os.environ["SM_CURRENT_HOST"],
    "is_master": json.loads(os.environ["SM_TRAINING_ENV"])["is_master"],
    "addresses": json.loads(os.environ.get("SM_LOCAL_HOST_ADDRESSES", "{}")),
    "threads": os.environ.get("OMP_NUM_THREADS"),
    "train": sorted(p.name for p in train.iterdir()),
    "validation": sorted(p.name for p in Path(os.environ["SM_CHANNEL_VALIDATION"]).iterdir()),
    "distribution": json.loads(
        Path(os.environ["SM_INPUT_CONFIG_DIR"], "inputdataconfig.json").read_text()
    )["train"]["S3DistributionType"],
}
if os.environ.get("SM_HP_FAIL_ON") == host:
    print("ERROR: " + host + " cannot read its shard", file=sys.stderr)
    sys.exit(2)
if os.environ.get("SM_HP_FAIL_ON"):
    time.sleep(120)  # a host waiting for a peer that failed: the job must stop it
Path(os.environ["SM_MODEL_DIR"], host + ".json").write_text(json.dumps(seen))
"""


def _hosts_request(store: LocalS3, hosts: int, **hyperparameters: str) -> dict:
    request = _training_request(store, {"train.py": HOST_SCRIPT}, **hyperparameters)
    for index in range(2, 5):
        _put_text(store, f"{BUCKET}/data/train/part-{index}.csv", "1,1\n")
    request["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3DataDistributionType"] = (
        "ShardedByS3Key"
    )
    request["AlgorithmSpecification"].pop("MetricDefinitions")
    request["ResourceConfig"]["InstanceCount"] = hosts
    return request


def test_training_hosts_each_get_their_own_sandbox_config_and_shard(tmp_path: Path):
    store = _store(tmp_path)
    sandbox = tmp_path / "sandbox"

    outcome = run_training_job("Train-2", _hosts_request(store, 2), store, sandbox)

    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    second = sandbox / HOSTS_DIR / "algo-2"
    seen = {
        host: json.loads((container_path(root, "/opt/ml/model") / f"{host}.json").read_text())
        for host, root in (("algo-1", sandbox), ("algo-2", second))
    }
    assert seen["algo-1"]["train"] == ["part-0.csv", "part-2.csv", "part-4.csv"]
    assert seen["algo-2"]["train"] == ["part-1.csv", "part-3.csv"]  # ShardedByS3Key: disjoint
    for host, view in seen.items():
        assert view["host"] == view["env_host"] == host
        assert view["hosts"] == ["algo-1", "algo-2"]
        assert view["is_master"] is (host == "algo-1")
        assert view["validation"] == ["validation.csv"]  # FullyReplicated
        assert view["distribution"] == "ShardedByS3Key"
        assert set(view["addresses"]) == {"algo-1", "algo-2"}
        assert view["threads"] == str(max(1, (os.cpu_count() or 1) // 2))
    first, other = (seen["algo-1"]["addresses"][h] for h in ("algo-1", "algo-2"))
    assert first.startswith("127.") and first.endswith(".1") and other.endswith(".2")
    with tarfile.open(store.path(f"{BUCKET}/models/Train-2/output/model.tar.gz")) as tar:
        assert tar.getnames() == ["algo-1.json"]  # the first host's model dir is the model


def test_one_failing_host_fails_the_job_and_stops_the_others(tmp_path: Path):
    store = _store(tmp_path)
    request = _hosts_request(store, 3, FAIL_ON='"algo-2"')
    sandbox = tmp_path / "sandbox"

    outcome = run_training_job("Train-3", request, store, sandbox)

    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason == "algo-2 cannot read its shard"
    assert "host algo-2 failed" in outcome.log_path.read_text()
    # The waiting hosts were stopped, not waited for: neither got past its wait.
    for host, root in (("algo-1", sandbox), ("algo-3", sandbox / HOSTS_DIR / "algo-3")):
        assert not (container_path(root, "/opt/ml/model") / f"{host}.json").exists()
    assert not store.path(f"{BUCKET}/models/Train-3").exists()


def test_a_training_instance_count_the_runtime_cannot_run_is_refused(tmp_path: Path):
    store = _store(tmp_path)
    request = _hosts_request(store, 0)
    outcome = run_training_job("Train-0", request, store, tmp_path / "sandbox")
    assert outcome.status is JobStatus.FAILED
    assert "ResourceConfig.InstanceCount=0" in (outcome.failure_reason or "")


def test_the_engine_tells_warm_starts_which_jobs_may_start_together(tmp_path: Path) -> None:
    """After Preprocess starts, FitTransformer and DataQuality may start at the same moment;
    after them, Train, then Evaluate; then BatchScore, whose upstream job (Evaluate) is reached
    through the steps that are not jobs (condition, registration, approval, model)."""
    from config.paths import ROOT
    from runtime.engine import LocalPipelineRunner, _Run
    from runtime.execution import EXECUTING, Execution, Hooks, StepRecord
    from tabular.contract import definition_steps

    definition = json.loads((ROOT / "tests" / "golden" / "pipeline.json").read_text())
    steps, _ = definition_steps(definition)
    execution = Execution(
        "0123456789ab", "p", EXECUTING, {}, "now",
        steps={name: StepRecord(name, step["Type"]) for name, step in steps.items()},
    )  # fmt: skip
    run = _Run(LocalPipelineRunner(tmp_path / "ws", "us-east-1"), execution, definition, Hooks())
    seen = []
    for started in (
        ["Profile"], ["Preprocess"], ["FitTransformer", "DataQuality"], ["Train"], ["Evaluate"],
        ["BatchScore"],
    ):  # fmt: skip
        for name in started:
            execution.steps[name].status = EXECUTING
        seen.append((run._jobs_to_come(), run._jobs_next()))
    assert seen == [(6, 1), (5, 2), (3, 1), (2, 1), (1, 1), (0, 0)]


PROCESSING_HOST_SCRIPT = """
import json, os, sys, time
from pathlib import Path

config_dir = Path(sys.argv[sys.argv.index("--config") + 1])
config = json.loads((config_dir / "resourceconfig.json").read_text())
host = config["current_host"]
data = Path(sys.argv[sys.argv.index("--data") + 1])
seen = {
    "host": host,
    "hosts": config["hosts"],
    "job": json.loads((config_dir / "processingjobconfig.json").read_text()),
    "pid": os.getpid(),
    "threads": os.environ.get("OMP_NUM_THREADS"),
    "data": sorted(p.name for p in data.iterdir()),
}
if os.environ.get("FAIL_ON") == host:
    print("ERROR: " + host + " cannot read its files", file=sys.stderr)
    sys.exit(2)
if os.environ.get("FAIL_ON"):
    time.sleep(120)  # the other hosts: the job must stop them
out = Path(sys.argv[sys.argv.index("--out") + 1])
(out / (host + ".json")).write_text(json.dumps(seen))
(out / "same-name.txt").write_text(host)
"""


def _processing_hosts_request(store: LocalS3, hosts: int, **environment: str) -> dict:
    _put_text(store, f"{BUCKET}/code/job.py", PROCESSING_HOST_SCRIPT)
    for index in range(5):
        _put_text(store, f"{BUCKET}/data/part-{index}.csv", "a\n1\n")
    _put_text(store, f"{BUCKET}/shared/settings.json", "{}")
    request = _processing_request(
        f"{BUCKET}/code",
        [
            "--config",
            "/opt/ml/config",
            "--data",
            "/opt/ml/processing/input/data",
            "--out",
            "/opt/ml/processing/output/result",
        ],  # fmt: skip
        Environment=environment,
    )
    request["ProcessingInputs"] += [
        {
            "InputName": name,
            "S3Input": {
                "S3Uri": f"{BUCKET}/{name}",
                "LocalPath": f"/opt/ml/processing/input/{name}",
                "S3DataType": "S3Prefix",
                "S3InputMode": "File",
                "S3DataDistributionType": distribution,
            },
        }
        for name, distribution in (("data", "ShardedByS3Key"), ("shared", "FullyReplicated"))
    ]
    request["ProcessingResources"]["ClusterConfig"]["InstanceCount"] = hosts
    return request


def test_processing_hosts_each_get_their_own_process_sandbox_config_and_files(tmp_path: Path):
    store = _store(tmp_path)
    sandbox = tmp_path / "sandbox"

    outcome = run_processing_job(
        "Preprocess-2", _processing_hosts_request(store, 2), store, sandbox
    )

    assert outcome.status is JobStatus.COMPLETED, outcome.failure_reason
    published = store.path(f"{BUCKET}/out/result")
    seen = {
        host: json.loads((published / f"{host}.json").read_text()) for host in ("algo-1", "algo-2")
    }
    assert seen["algo-1"]["data"] == ["part-0.csv", "part-2.csv", "part-4.csv"]
    assert seen["algo-2"]["data"] == ["part-1.csv", "part-3.csv"]  # ShardedByS3Key: disjoint
    request = _processing_hosts_request(store, 2)
    input_shape = (
        botocore.session.get_session()
        .get_service_model("sagemaker")
        .operation_model("CreateProcessingJob")
        .input_shape
    )
    for host, view in seen.items():
        assert view["host"] == host and view["hosts"] == ["algo-1", "algo-2"]
        assert view["threads"] == str(max(1, (os.cpu_count() or 1) // 2))
        # processingjobconfig.json: the job's name, its ARN and its request, as SageMaker
        # writes it; without the ARN, a CreateProcessingJob request botocore accepts.
        job = dict(view["job"])
        assert job.pop("ProcessingJobArn") == outcome.describe["ProcessingJobArn"]
        assert outcome.describe["ProcessingJobArn"].endswith(":processing-job/preprocess-2")
        assert job["ProcessingJobName"] == "Preprocess-2"
        assert {k: v for k, v in job.items() if k != "ProcessingJobName"} == request
        report = ParamValidator().validate(job, input_shape)
        assert not report.has_errors(), report.generate_report()
    assert seen["algo-1"]["pid"] != seen["algo-2"]["pid"]  # one process per host
    second = sandbox / HOSTS_DIR / "algo-2"
    for root in (sandbox, second):  # a sandbox each; the replicated input on every host
        assert (container_path(root, "/opt/ml/processing/input/shared") / "settings.json").is_file()
        assert (container_path(root, "/opt/ml/config") / "resourceconfig.json").is_file()
    # Every host's outputs go to the same S3Uri; an object both write is the last host's.
    assert (published / "same-name.txt").read_text() == "algo-2"
    assert "ShardedByS3Key: host 2 of 2" in (second / "job.log").read_text()


def test_one_failing_processing_host_fails_the_job_stops_the_others_and_uploads_nothing(
    tmp_path: Path,
):
    store = _store(tmp_path)
    request = _processing_hosts_request(store, 3, FAIL_ON="algo-3")
    started = time.monotonic()
    outcome = run_processing_job("Preprocess-3", request, store, tmp_path / "sandbox")
    assert outcome.status is JobStatus.FAILED
    assert outcome.failure_reason == "algo-3 cannot read its files"
    assert time.monotonic() - started < 60  # the sleeping hosts were stopped
    assert store.objects(f"{BUCKET}/out/result") == []


def test_a_processing_instance_count_the_runtime_cannot_run_is_refused(tmp_path: Path):
    store = _store(tmp_path)
    request = _processing_hosts_request(store, 300)
    outcome = run_processing_job("Preprocess-300", request, store, tmp_path / "sandbox")
    assert outcome.status is JobStatus.FAILED
    assert "ProcessingResources.ClusterConfig.InstanceCount=300" in (outcome.failure_reason or "")

"""Where a job writes why it failed: the file SageMaker reads for that kind of job.

* Training jobs: ``/opt/ml/output/failure``; DescribeTrainingJob returns its first 1024
  characters as ``FailureReason`` ("How Amazon SageMaker AI Processes Training Output",
  docs.aws.amazon.com/sagemaker/latest/dg/your-algorithms-training-algo-output.html).
* Processing jobs: ``/opt/ml/output/message``; DescribeProcessingJob returns its first 1 KB as
  ``ExitMessage``, the field documented for telling why a processing container failed ("Save
  and Access Metadata Information About Your Processing Job",
  docs.aws.amazon.com/sagemaker/latest/dg/byoc-metadata.html). SageMaker's own Spark
  processing container reports its failures there too.

The container's output directory is ``$SM_OUTPUT_DIR`` when set (the training toolkit sets it;
the processing steps pass it, so a local runtime can place it in the job's sandbox), else
``/opt/ml/output``. Text is written as UTF-8: a processing job whose message is not UTF-8
fails with a ClientError.
"""

from __future__ import annotations

import os
from pathlib import Path

OUTPUT_DIR = "/opt/ml/output"
OUTPUT_DIR_ENV = "SM_OUTPUT_DIR"
TRAINING = "training"
PROCESSING = "processing"
FILES = {TRAINING: "failure", PROCESSING: "message"}
LIMIT = 1024
"""SageMaker keeps the first 1024 characters; the rest is in the job's log."""


def failure_path(kind: str) -> Path:
    """The file SageMaker reads a ``kind`` job's failure from."""
    if kind not in FILES:
        raise ValueError(f"job kind {kind!r} is not one of {sorted(FILES)}")
    return Path(os.environ.get(OUTPUT_DIR_ENV) or OUTPUT_DIR) / FILES[kind]


def write_failure(kind: str, message: str) -> Path:
    """Record ``message`` as the job's failure reason (as its kind of job reports it)."""
    path = failure_path(kind)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(message.strip() + "\n", encoding="utf-8")
    return path

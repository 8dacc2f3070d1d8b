"""Local stand-ins for SageMaker processing, training and batch transform jobs.

Each job runs as a host process (no Docker, no AWS) in a sandbox directory of its own: the
container's ``/opt/ml`` is ``<sandbox>/opt/ml``, and every argument or environment value that
names a path under ``/opt/ml/`` is rewritten to the sandbox path (see :func:`container_path`).
The jobs follow SageMaker's API shapes and container contracts:

* processing (CreateProcessingJob): each ``S3Input`` is copied to its ``LocalPath``, the
  entrypoint runs with its arguments, each output dir is uploaded to its ``S3Uri`` when the job
  completes;
* training (CreateTrainingJob) in the framework containers' script mode
  (sagemaker-training-toolkit): ``sagemaker_program`` from ``sagemaker_submit_directory`` runs
  in ``/opt/ml/code`` with the hyperparameters as ``--key value`` arguments, the channels under
  ``/opt/ml/input/data``, the config files under ``/opt/ml/input/config`` and the toolkit's
  ``SM_*`` environment; ``/opt/ml/model`` is published as ``<job>/output/model.tar.gz``;
* batch transform (CreateTransformJob) of a script-mode model (its CreateModel request gives
  the image environment), through ``python -m runtime.serving.batch``.

Job code runs with the host's (or the given) Python in place of the image's ``python3``: the
images are expected to carry the library versions the project pins. A job that fails reports a
FailureReason the way SageMaker does (a failure file the job wrote, else its last ``ERROR:``
line, else ``AlgorithmError: <last stderr line>, exit code: N``); outputs of a failed job are
never uploaded. Requests SageMaker would reject, data that is missing and features the local
runtime does not support fail the job with a reason that names the field, not with an exception.

The rooms: :mod:`.contract` (SageMaker's layout, limits and outcomes), :mod:`.process` (a job's
process group: launch, log, time out, stop), :mod:`.warm` (Python jobs started from an
interpreter that loaded its libraries ahead of time), :mod:`.sandbox` (``/opt/ml`` on the
host, the job's environment, staging), :mod:`.launcher` (the one skeleton every job runs
through), and one runner per job kind (:mod:`.processing`, :mod:`.training`, :mod:`.transform`).

Like the rest of ``runtime``, this package knows the SageMaker job contracts only: it imports
nothing from the pipeline packages, the SageMaker SDK or boto3.
"""

import sys

from runtime.jobs import warm
from runtime.jobs.contract import (
    PROJECT_ROOT,
    CommandResult,
    JobOutcome,
    JobSetupError,
    JobStatus,
)
from runtime.jobs.process import KILL_GRACE_SECONDS, run_command
from runtime.jobs.processing import run_processing_job
from runtime.jobs.sandbox import container_path, host_env, map_container_value
from runtime.jobs.training import run_training_job
from runtime.jobs.transform import run_transform_job
from runtime.jobs.warm import discard_all as discard_warm_starts
from runtime.jobs.warm import expect_jobs


def prime_warm_starts(python: str = sys.executable) -> None:
    """Start loading the next job's interpreter now (:mod:`runtime.jobs.warm`): a run calls it
    before its first job is due, while it builds or validates what it runs."""
    warm.prime(python, host_env())


__all__ = [
    "FAILURE_FILE",
    "INPUT_DATA_DIR",
    "KILL_GRACE_SECONDS",
    "MODEL_ARCHIVE",
    "MODEL_DIR",
    "OUTPUT_DATA_DIR",
    "OUTPUT_DIR",
    "PROJECT_ROOT",
    "CommandResult",
    "JobOutcome",
    "JobSetupError",
    "JobStatus",
    "container_path",
    "discard_warm_starts",
    "expect_jobs",
    "prime_warm_starts",
    "map_container_value",
    "run_command",
    "run_processing_job",
    "run_training_job",
    "run_transform_job",
]

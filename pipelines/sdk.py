"""What the SageMaker SDK needs before it is imported, taken from the config, not the machine."""

from __future__ import annotations

import os
import warnings

from steps.config import Config


def prepare_sdk(cfg: Config) -> None:
    """Set the region (the SDK creates clients at import time) and skip its IAM role probe.

    The definition is built offline: SageMaker itself checks the role when the pipeline is
    created and when each job starts, so the SDK's client-side IAM simulation adds nothing here.
    """
    os.environ["AWS_DEFAULT_REGION"] = cfg.aws.region
    os.environ["AWS_REGION"] = cfg.aws.region
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")

"""The pipeline parameters: what an execution may change without a new definition.

Their names, written once for the builders (steps/context.py declares them, each with its
default from the config), the config's own checks (schedule.parameters), the local run and the
scheduler. Standard library only.
"""

from __future__ import annotations

INPUT_DATA_URI = "InputDataUri"
DATA_VERSION = "DataVersion"
"""Part of Preprocess's cache key: a new value makes it re-read the data at the same URI."""
SCORING_DATA_URI = "ScoringDataUri"
"""Only with data.scoring_uri: the data BatchScore scores, read and checked by Preprocess."""
PREPROCESS_INSTANCE_TYPE = "PreprocessInstanceType"
PREPROCESS_INSTANCE_COUNT = "PreprocessInstanceCount"
"""Instances of Profile and Preprocess, each given about 1/N of the input files (whole)."""
DATA_QUALITY_INSTANCE_TYPE = "DataQualityInstanceType"
TRAIN_INSTANCE_TYPE = "TrainInstanceType"
TRAIN_INSTANCE_COUNT = "TrainInstanceCount"
EVALUATE_INSTANCE_TYPE = "EvaluateInstanceType"
TRANSFORM_INSTANCE_TYPE = "TransformInstanceType"
METRIC_THRESHOLD = "MetricThreshold"
MODEL_APPROVAL_STATUS = "ModelApprovalStatus"
SKIP_DATA_QUALITY_CHECK = "SkipDataQualityCheck"
REGISTER_NEW_BASELINE = "RegisterNewBaseline"

"""The graph's own names: its steps and the Approval callback's fields.

Written once for the builders, the CLI's local run and the approval answerers, which must not
need the SDK to read a step's record or a callback message. Standard library only. (Names the
jobs share with the builders are in tabular.names; parameter names in config.parameters.)
"""

PROFILE = "Profile"
"""Preprocess's first pass: each instance profiles its share of the input files."""
PREPROCESS = "Preprocess"
FIT_TRANSFORMER = "FitTransformer"
"""Preprocess's last pass: one instance fits the transformer from every instance's statistics."""
DATA_QUALITY = "DataQuality"
TRAIN = "Train"
EVALUATE = "Evaluate"
CHECK_METRIC = "CheckMetric"
METRIC_BELOW_THRESHOLD = "MetricBelowThreshold"
"""The Fail step of CheckMetric's else branch."""
REGISTER = "Register"
APPROVAL = "Approval"
CREATE_MODEL = "CreateModel"
BATCH_SCORE = "BatchScore"
CACHEABLE_STEPS = (PROFILE, PREPROCESS, FIT_TRANSFORMER, DATA_QUALITY, TRAIN, EVALUATE, BATCH_SCORE)
"""Steps with a cache config (SageMaker caches job steps only)."""
EVALUATION_REPORT = "EvaluationReport"
"""Evaluate's property file, which CheckMetric and Approval read the gated metric from."""

# The Approval callback: what its SQS message carries (inputs) and what an answer sets (outputs).
MODEL_PACKAGE_ARN = "model_package_arn"
METRIC_NAME = "metric_name"
METRIC_VALUE = "metric_value"
METRIC_THRESHOLD = "metric_threshold"
DECISION = "decision"
REVIEWER = "reviewer"
REASON = "reason"
APPROVED = "approved"
"""The ``decision`` an approval sets."""

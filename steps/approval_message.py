"""The Approval callback's message: what its SQS message carries and what an answer sets.

Shared by the builder (steps/approval.py) and by the local and AWS answerers, which must not
need the SDK to read a message.
"""

STEP_NAME = "Approval"
# What the callback message carries (inputs) and what the reviewer's answer sets (outputs).
MODEL_PACKAGE_ARN = "model_package_arn"
METRIC_NAME = "metric_name"
METRIC_VALUE = "metric_value"
METRIC_THRESHOLD = "metric_threshold"
DECISION = "decision"
REVIEWER = "reviewer"
REASON = "reason"
APPROVED = "approved"

"""Local stand-in for the Model Monitor analyzer image (data quality baselines and checks).

A pipeline ``QualityCheckStep`` with ``DataQualityCheckConfig`` runs the
``sagemaker-model-monitor-analyzer`` image. This package does the same work in the host
process: it profiles a CSV data set, suggests constraints and, given a baseline, reports
violations. The three files follow the formats documented for Model Monitor
("Schema for Statistics", "Schema for Constraints", "Schema for Violations"):

* ``statistics.json``: ``{"version": 0.0, "dataset": {"item_count": N}, "features": [...]}``;
  numeric features carry ``numerical_statistics`` (common counts, mean, sum, std_dev,
  min, max and a ``kll`` distribution with 10 equal-width buckets and a sketch), string
  features carry ``string_statistics`` (common counts, distinct_count and categorical
  buckets). Each feature also carries ``inferred_type_counts`` (present values per
  type), one of the custom statistics the format allows; ``check_violations`` uses it
  for the data-type check and falls back to ``inferred_type`` when it is absent.
* ``constraints.json``: per feature ``completeness``, ``num_constraints.is_non_negative``
  and, for low-cardinality strings, ``string_constraints.domains``; plus
  ``monitoring_config``.
* ``constraint_violations.json``: ``{"violations": [{"feature_name",
  "constraint_check_type", "description"}]}``.

How the analyzer's behaviour is reproduced (it is built on Deequ; the rules below are
Deequ's where the documentation is silent):

* Types are inferred from the CSV text: a feature whose non-missing values all are
  integers (``-12``) is Integral, all numbers (``1.5``, ``1e3``, ``1.0``) Fractional,
  anything else String; all missing is Unknown. Numeric pandas columns (frames built in
  memory) have no text, so there a float column of whole numbers is Integral.
* Missing values: empty fields and pandas' default NA spellings (``NA``, ``NaN``, ...).
* ``std_dev`` is the population standard deviation (Deequ's StandardDeviation).
* The sketch holds all values when there are at most ``k`` = 2048 of them, otherwise
  2048 evenly spaced order statistics (min and max included), as one level of equal
  weights; it is a quantile sample, not a KLL compaction.
* Categorical buckets are written for features with at most 120 distinct values
  (Deequ's histogram cardinality threshold). A String feature gets a ``domains``
  constraint when it has buckets and at most 10 % of its distinct values occur once
  (Deequ's CategoricalRangeRule); values are listed by popularity.
* Thresholds are required match ratios: ``datatype_check_threshold`` is the share of
  present values that must have the baseline type, ``domain_content_threshold`` the
  share that must lie in the baseline domain (1.0: every value). Completeness may not
  drop below the baseline's.
* Drift is Deequ's L-infinity distance: the largest CDF difference of the two sketches
  (numeric) or the largest difference of category frequencies (categorical). With
  ``comparison_method`` "Robust" it is reduced by ``1.8 * sqrt((n + m) / (n * m))``
  (two-sample Kolmogorov-Smirnov, n and m the present counts) and floored at 0; a
  violation is a distance above the threshold. ``ChiSquared`` is not supported.
* A numeric feature whose baseline is non-negative and whose minimum is now negative is
  reported as ``non_negative_check``, a type the documentation does not list.
* ``evaluate_constraints: Disabled`` leaves only the drift check; a feature's
  ``monitoringConfigOverrides`` override ``monitoring_config`` for that feature.

The rooms: :mod:`.contract` (file names, enums, defaults), :mod:`.statistics`,
:mod:`.constraints`, :mod:`.violations`, and :mod:`.job` (the analyzer's entrypoint).

CLI::

    python -m runtime.monitor --dataset PATH [--no-header] --output-dir DIR \
        [--baseline-statistics FILE --baseline-constraints FILE]

Exit code 0 when the job ran (also with violations: the caller decides what they
mean), 2 with an ``ERROR: ...`` line for unusable input.
"""

from runtime.monitor.constraints import suggest_constraints
from runtime.monitor.contract import BaselineResult, MonitorError
from runtime.monitor.job import main, read_dataset, run_baseline_job
from runtime.monitor.statistics import compute_statistics
from runtime.monitor.violations import check_violations

__all__ = [
    "BaselineResult",
    "MonitorError",
    "check_violations",
    "compute_statistics",
    "main",
    "read_dataset",
    "run_baseline_job",
    "suggest_constraints",
]

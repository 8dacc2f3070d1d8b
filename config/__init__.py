"""The typed, frozen configuration every layer takes, loaded once from configs/*.yaml.

* :mod:`config.schema`: :class:`Config`, one section per key (config/data.py, config/sections.py);
* :mod:`config.loading`: :func:`load_config` (``extends:``, environment overrides, one error
  listing every problem);
* :mod:`config.catalogue`: instance types and image versions checked against AWS's catalogues;
* :mod:`config.queue_url`: approval queue URLs as SQS accepts them;
* :mod:`config.gate`: the metric, threshold and comparison of the CheckMetric condition;
* :mod:`config.parameters`: the names of the pipeline parameters;
* :mod:`config.paths`: where things are in this repository.

No SageMaker SDK and no pandas: every verb may load a config, and the AWS verbs and the local
registry commands do not import either.
"""

from config.gate import Gate
from config.loading import ENV_OVERRIDES, ConfigError, load_config
from config.paths import BASE_CONFIG, LOCAL_CONFIG, PIPELINE_CONFIG
from config.schema import Config
from config.sections import JobSection, SecuritySection

__all__ = [
    "BASE_CONFIG",
    "ENV_OVERRIDES",
    "LOCAL_CONFIG",
    "PIPELINE_CONFIG",
    "Config",
    "ConfigError",
    "Gate",
    "JobSection",
    "SecuritySection",
    "load_config",
]

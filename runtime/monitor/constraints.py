"""constraints.json: the constraints suggested from a baseline's statistics."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from runtime.monitor.contract import (
    DEFAULT_MONITORING_CONFIG,
    DOMAIN_UNIQUE_RATIO,
    FORMAT_VERSION,
    InferredType,
)
from runtime.monitor.statistics import common_counts


def default_monitoring_config() -> dict[str, Any]:
    """A fresh copy of the ``monitoring_config`` that :func:`suggest_constraints` writes."""
    return copy.deepcopy(dict(DEFAULT_MONITORING_CONFIG))


def suggest_constraints(statistics: Mapping[str, Any]) -> dict[str, Any]:
    """Suggest constraints.json for the data set described by ``statistics``."""
    item_count = int(statistics["dataset"]["item_count"])
    features = []
    for feature in statistics["features"]:
        present = common_counts(feature)["num_present"]
        constraint: dict[str, Any] = {
            "name": feature["name"],
            "inferred_type": feature["inferred_type"],
            "completeness": present / item_count if item_count else 0.0,
        }
        numerical = feature.get("numerical_statistics")
        if numerical is not None:
            minimum = numerical.get("min")
            constraint["num_constraints"] = {
                "is_non_negative": minimum is not None and minimum >= 0
            }
        if feature["inferred_type"] == InferredType.STRING:
            domains = _suggest_domains(feature["string_statistics"])
            if domains is not None:
                constraint["string_constraints"] = {"domains": domains}
        features.append(constraint)
    return {
        "version": FORMAT_VERSION,
        "features": features,
        "monitoring_config": default_monitoring_config(),
    }


def _suggest_domains(string_statistics: Mapping[str, Any]) -> list[str] | None:
    buckets = string_statistics["distribution"]["categorical"]["buckets"]
    if not buckets:
        return None
    singletons = sum(1 for bucket in buckets if bucket["count"] == 1)
    if singletons / len(buckets) > DOMAIN_UNIQUE_RATIO:
        return None
    return [bucket["value"] for bucket in buckets]

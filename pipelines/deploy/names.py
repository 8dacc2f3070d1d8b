"""Names of what deploy creates, and the tags that say deploy created it.

Endpoint configs and models are named `<endpoint>-v<package version>-<hash>`, the hash being of
the request's content: the same package and settings give the same name on every machine (a
re-run finds what exists, a rollback reuses the old config), and any change gives a new one. A
resource is deploy's when it carries OWNER_TAG = its endpoint's name; undeploy removes only
those.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

TAG_PREFIX = "tabular-pipelines:"
OWNER_TAG = f"{TAG_PREFIX}endpoint"  # value: the endpoint the resource was created for
STAGE_TAG = f"{TAG_PREFIX}stage"
PACKAGE_TAG = f"{TAG_PREFIX}package-arn"
VERSION_TAG = f"{TAG_PREFIX}package-version"
CONFIG_TAG = f"{TAG_PREFIX}endpoint-config"
BY_TAG = f"{TAG_PREFIX}deployed-by"
AT_TAG = f"{TAG_PREFIX}deployed-at"
HISTORY_PREFIX = f"{TAG_PREFIX}history:"
HASH_LENGTH = 8
SCALING_POLICY_SUFFIX = "-target-tracking"
SCALE_FROM_ZERO_SUFFIX = "-scale-from-zero"
BACKLOG_ALARM_SUFFIX = "-backlog-without-capacity"
MONITORING_SUFFIX = "-data-quality"
SHADOW_SUFFIX = "-shadow"


def content_hash(request: dict[str, Any]) -> str:
    """A short, stable digest of a request's content (key order and whitespace aside)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:HASH_LENGTH]


def versioned(endpoint: str, version: int, request: dict[str, Any]) -> str:
    """`<endpoint>-v<version>-<hash of request>`: a config's or model's name."""
    return f"{endpoint}-v{version}-{content_hash(request)}"


def version_of(name: str, endpoint: str) -> int | None:
    """The package version in a name made by :func:`versioned` for `endpoint`, else None."""
    prefix = f"{endpoint}-v"
    if not name.startswith(prefix):
        return None
    version, _, digest = name[len(prefix) :].partition("-")
    if not version.isdigit() or len(digest) != HASH_LENGTH:
        return None
    return int(version)


def alarm_name(config_name: str, alarm: str) -> str:
    """A rollback alarm watches one endpoint config (the new fleet): named after it."""
    return f"{config_name}-{alarm}"


def alarm_prefix(endpoint: str) -> str:
    """Every alarm deploy creates for `endpoint` starts with this."""
    return f"{endpoint}-"


def scaling_resource_id(endpoint: str, variant: str) -> str:
    """Application Auto Scaling's id of an endpoint variant."""
    return f"endpoint/{endpoint}/variant/{variant}"


def monitoring_schedule_name(endpoint: str) -> str:
    return f"{endpoint}{MONITORING_SUFFIX}"


def shadow_variant_name(variant: str) -> str:
    return f"{variant}{SHADOW_SUFFIX}"[:63]


def experiment_name(endpoint: str, version: int) -> str:
    return f"{endpoint}{SHADOW_SUFFIX}-v{version}"


def owner_tags(endpoint: str, stage: str, extra: dict[str, str]) -> list[dict[str, str]]:
    """The tags on everything deploy creates: the config's `tags`, then ownership."""
    tags = {**extra, OWNER_TAG: endpoint, STAGE_TAG: stage}
    return [{"Key": key, "Value": value} for key, value in tags.items()]


def as_dict(tags: list[dict[str, str]] | None) -> dict[str, str]:
    return {tag["Key"]: tag["Value"] for tag in tags or []}

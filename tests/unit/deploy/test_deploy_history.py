"""The deployment history in the endpoint's tags."""

from __future__ import annotations

import re

import botocore.session

from pipelines.deploy import history
from pipelines.deploy.history import DEPLOY, ROLLBACK, HistoryEntry

ARN = "arn:aws:sagemaker:us-east-1:123456789012:model-package/tabular-xgboost/{}"


def entries(count: int) -> tuple[dict[str, str], list[HistoryEntry]]:
    tags: dict[str, str] = {}
    for version in range(1, count + 1):
        added, removed = history.append(
            history.read(tags), ARN.format(version), version, f"ep-v{version}-0123abcd",
            "assumed-role/deploy/ci", f"2026-01-0{version % 9 + 1}T00:00:00Z", DEPLOY,
        )  # fmt: skip
        for key in removed:
            del tags[key]
        tags.update(added)
    return tags, history.read(tags)


def test_entries_round_trip_and_the_newest_are_kept() -> None:
    tags, found = entries(3)
    assert [e.version for e in found] == [1, 2, 3]
    assert found[-1].package_arn == ARN.format(3) and found[-1].by == "assumed-role/deploy/ci"
    assert found[-1].config_name == "ep-v3-0123abcd" and found[-1].action == DEPLOY
    tags, found = entries(history.HISTORY_KEEP + 3)
    assert len(found) == history.HISTORY_KEEP
    assert [e.version for e in found][0] == 4
    assert len(tags) == 2 * history.HISTORY_KEEP


def test_tag_keys_and_values_are_what_sagemaker_accepts() -> None:
    model = botocore.session.get_session().get_service_model("sagemaker")
    # Java's \p{L}\p{Z}\p{N} (letters, separators, digits) in Python's terms.
    java = r"\p{L}\p{Z}\p{N}"
    key_pattern = model.shape_for("TagKey").metadata["pattern"].replace(java, r"\w\s")
    value_pattern = model.shape_for("TagValue").metadata["pattern"].replace(java, r"\w\s")
    who = "DOMAIN\\user name (admin)"
    added, _ = history.append(
        [], ARN.format(1), 1, "ep-v1-0123abcd", who, "2026-01-01T00:00:00Z", ROLLBACK
    )
    for key, value in added.items():
        assert re.fullmatch(key_pattern, key, flags=re.UNICODE) and len(key) <= 128
        assert re.fullmatch(value_pattern, value, flags=re.UNICODE) and len(value) <= 256
    (entry,) = history.read(added)
    assert entry.by == "DOMAIN_user_name__admin_" and entry.action == ROLLBACK


def test_rollback_goes_to_the_latest_other_version() -> None:
    _, found = entries(3)
    target = history.rollback_target(found, 3)
    assert target is not None and target.version == 2
    assert history.rollback_target(found[:1], 1) is None
    assert history.read({"tabular-pipelines:history:x": "garbage", "other": "tag"}) == []

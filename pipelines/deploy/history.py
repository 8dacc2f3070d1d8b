"""The deployment history, kept in the endpoint's own tags so any machine can read it.

Each deployment that went live adds two tags, `tabular-pipelines:history:<n>` (version, config,
who, when, what) and `...:<n>:package` (the package ARN); the newest HISTORY_KEEP stay. Tag
values allow letters, digits, spaces and `_.:/=+-@` only, so a value is `key=value` words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.deploy.names import HISTORY_PREFIX

HISTORY_KEEP = 10
PACKAGE_SUFFIX = ":package"
SEQUENCE_DIGITS = 6
DEPLOY, ROLLBACK = "deploy", "rollback"
UNSAFE = re.compile(r"[^\w\s.:/=+\-@]")
WHO_MAX = 64


def tag_safe(text: str, limit: int = WHO_MAX) -> str:
    """`text` with the characters a tag value may not hold replaced, at most `limit` long."""
    return UNSAFE.sub("_", text).replace(" ", "_")[:limit]


@dataclass(frozen=True)
class HistoryEntry:
    sequence: int
    package_arn: str
    version: int
    config_name: str
    by: str
    at: str  # UTC, ISO 8601
    action: str  # deploy | rollback

    @property
    def key(self) -> str:
        return f"{HISTORY_PREFIX}{self.sequence:0{SEQUENCE_DIGITS}d}"

    def tags(self) -> dict[str, str]:
        value = (
            f"version={self.version} config={self.config_name} by={tag_safe(self.by)} "
            f"at={self.at} action={self.action}"
        )
        return {self.key: value, self.key + PACKAGE_SUFFIX: self.package_arn}


def read(tags: dict[str, str]) -> list[HistoryEntry]:
    """The entries in the endpoint's tags, oldest first (unreadable ones are skipped)."""
    entries = []
    for key, value in tags.items():
        if not key.startswith(HISTORY_PREFIX) or key.endswith(PACKAGE_SUFFIX):
            continue
        number = key[len(HISTORY_PREFIX) :]
        fields = dict(word.split("=", 1) for word in value.split() if "=" in word)
        if not number.isdigit() or not fields.get("version", "").isdigit():
            continue
        entries.append(
            HistoryEntry(
                sequence=int(number),
                package_arn=tags.get(key + PACKAGE_SUFFIX, ""),
                version=int(fields["version"]),
                config_name=fields.get("config", ""),
                by=fields.get("by", ""),
                at=fields.get("at", ""),
                action=fields.get("action", DEPLOY),
            )
        )
    return sorted(entries, key=lambda entry: entry.sequence)


def append(
    entries: list[HistoryEntry],
    package_arn: str,
    version: int,
    config_name: str,
    by: str,
    at: str,
    action: str,
) -> tuple[dict[str, str], list[str]]:
    """Tags to add for a new entry, and the keys of entries that fall out of the history."""
    sequence = (entries[-1].sequence + 1) if entries else 1
    entry = HistoryEntry(sequence, package_arn, version, config_name, by, at, action)
    kept = [*entries, entry][-HISTORY_KEEP:]
    dropped = [e for e in entries if e not in kept]
    removed = [key for e in dropped for key in e.tags()]
    return entry.tags(), removed


def rollback_target(entries: list[HistoryEntry], live_version: int | None) -> HistoryEntry | None:
    """The most recent deployment of another package version than the live one."""
    for entry in reversed(entries):
        if entry.version != live_version:
            return entry
    return None

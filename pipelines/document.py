"""The built pipeline as the publishing and local verbs see it, without the SDK.

`pipelines.definition` builds it (with the SDK); `publish` and `local` only read it, so the verbs
that never build (registry, approve/reject, schedule, ...) never import the SDK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from steps.code import CodeArtifact

if TYPE_CHECKING:
    from sagemaker.mlops.workflow.pipeline import Pipeline


@dataclass(frozen=True)
class BuiltPipeline:
    """The pipeline object, its canonical definition and the code objects it names. ``pipeline``
    is None for a saved build reused without the SDK (pipelines/saved.py)."""

    pipeline: Pipeline | None
    definition: str
    code: list[CodeArtifact]


def canonical_json(document: str) -> str:
    """Stable, reviewable form of a definition: sorted keys, two-space indent, final newline."""
    return json.dumps(json.loads(document), indent=2, sort_keys=True) + "\n"

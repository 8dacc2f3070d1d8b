"""Checks against AWS's own catalogues: what SageMaker's API offers and what the SDK can name.

Instance types come from botocore's SageMaker service model (the API's enums, per job kind);
image versions from the SDK's image_uri_config files, read as data without importing the SDK
(whose import needs a region). Both are read once per process, and botocore's data files once
per process for every session (:func:`share_botocore_loader`).
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import botocore.loaders
import botocore.model
import botocore.session
from pydantic import AfterValidator


@cache
def service_model(service: str) -> botocore.model.ServiceModel:
    """botocore's model of an AWS service, loaded once per process (one session's loader)."""
    return _session().get_service_model(service)


@cache
def _session() -> botocore.session.Session:
    share_botocore_loader()
    return botocore.session.get_session()


def share_botocore_loader() -> None:
    """One botocore data loader per data path for every botocore session of this process, and
    for every call of ``botocore.loaders.create_loader()``.

    botocore gives each session a loader of its own, and a loader parses each data file it is
    asked for once (a service model, the endpoint data): every new session parses them again.
    boto3 and the SageMaker SDK make many sessions in one process (pipelines/sdk.py), so they
    all get this one loader. A loader holds parsed data only, never a region or credentials.
    """
    create = botocore.loaders.create_loader
    if getattr(create, "shared", False):
        return

    @cache
    def for_path(search_path_string: str | None) -> Any:
        loader = create(search_path_string)
        loader._search_paths = _Paths(loader.search_paths)  # each boto3.Session appends one
        return loader

    def shared(search_path_string: str | None = None) -> Any:
        return for_path(search_path_string)  # `create_loader()` is `create_loader(None)`

    shared.shared = True  # type: ignore[attr-defined]
    botocore.session.create_loader = shared  # sessions look it up when they first load data
    botocore.loaders.create_loader = shared


class _Paths(list[str]):
    """A loader's search paths: a path already there is not appended again."""

    def append(self, path: str) -> None:
        if path not in self:
            super().append(path)


@cache
def offered_instance_types(shape: str) -> frozenset[str]:
    """The instance types SageMaker's API accepts for a job kind (from botocore's model)."""
    return frozenset(service_model("sagemaker").shape_for(shape).enum)


def _offered(shape: str, job: str) -> AfterValidator:
    def check(value: str) -> str:
        if value not in offered_instance_types(shape):
            family = value.rsplit(".", 1)[0]
            near = sorted(t for t in offered_instance_types(shape) if t.startswith(family))[:6]
            hint = f"; e.g. {', '.join(near)}" if near else "; e.g. ml.m5.xlarge"
            raise ValueError(f"{value!r} is not an instance type SageMaker offers for {job}{hint}")
        return value

    return AfterValidator(check)


ProcessingInstance = Annotated[str, _offered("ProcessingInstanceType", "processing jobs")]
TrainingInstance = Annotated[str, _offered("TrainingInstanceType", "training jobs")]
TransformInstance = Annotated[str, _offered("TransformInstanceType", "batch transform")]
EndpointInstance = Annotated[str, _offered("ProductionVariantInstanceType", "endpoints")]


@cache
def offered_framework_versions(framework: str, scope: str) -> frozenset[str]:
    """Image versions the installed SDK can name for a framework (its image_uri_config files).

    Read as data, without importing the SDK (whose import needs a region).
    """
    spec = importlib.util.find_spec("sagemaker")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    folder = Path(next(iter(spec.submodule_search_locations))) / "core" / "image_uri_config"
    document = json.loads((folder / f"{framework}.json").read_text(encoding="utf-8"))
    return frozenset(document.get(scope, {}).get("versions", {}))


def _framework_version(framework: str, scopes: tuple[str, ...]) -> AfterValidator:
    def check(value: str) -> str:
        offered = frozenset.intersection(
            *(offered_framework_versions(framework, scope) for scope in scopes)
        )
        if offered and value not in offered:
            raise ValueError(
                f"{value!r} is not a {framework} image version SageMaker offers for "
                f"{' and '.join(scopes)}; choose one of {sorted(offered)}"
            )
        return value

    return AfterValidator(check)


SklearnVersion = Annotated[str, _framework_version("sklearn", ("training",))]
XGBoostVersion = Annotated[str, _framework_version("xgboost", ("training", "inference"))]

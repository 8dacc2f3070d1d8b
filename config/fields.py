"""Field types and checks the config sections share: text as written, names, URIs, durations.

YAML turns unquoted yes/no/NULL into booleans and None, and numbers into floats: a field meant
as text says so with the fix instead of taking another value silently.
"""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from tabular.dialect import WHITESPACE

NonEmpty = Annotated[str, Field(min_length=1)]
Fraction = Annotated[float, Field(gt=0.0, lt=1.0)]
YAML_SURPRISES = {True: "true", False: "false", None: "null"}


def _yaml_text(value: Any) -> Any:
    """Text as the user wrote it: YAML turns unquoted yes/no/on/off/NULL/~ into other types."""
    if isinstance(value, bool) or value is None:
        raise ValueError(
            f"YAML read an unquoted value here as {YAML_SURPRISES[value]} (yes, no, on, off, "
            "true, false, null, NULL and ~ are not text in YAML); quote the text you mean, "
            "e.g. 'NULL' or 'yes'"
        )
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError(
            f"YAML read this as the number {value!r}; quote it to give the exact text, e.g. "
            f"'{value}'"
        )
    return value


def _column_name(value: str) -> str:
    """A column name as a header gives it: no surrounding whitespace, no line break."""
    if value != value.strip(WHITESPACE):
        raise ValueError(
            f"{value!r} has surrounding whitespace, which is not part of a column name (it is "
            f"removed from the header when the file is read); write {value.strip(WHITESPACE)!r}"
        )
    if re.search(r"[\r\n\x00]", value):
        raise ValueError(f"{value!r} holds a line break or NUL; a column name cannot")
    return value


Text = Annotated[str, BeforeValidator(_yaml_text)]
ColumnName = Annotated[
    str, BeforeValidator(_yaml_text), Field(min_length=1), AfterValidator(_column_name)
]


def data_uri(schemes: tuple[str, ...]) -> AfterValidator:
    """A data location: s3://bucket/key, file:///absolute/path, or sample://name."""

    def check(value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise ValueError(
                f"{value!r} is not a {' or '.join(s + '://' for s in schemes)} URI; write e.g. "
                "s3://bucket/data.csv or file:///absolute/path/data.csv"
            )
        if parts.scheme == "file" and (parts.netloc not in ("", "localhost") or not parts.path):
            raise ValueError(
                f"{value!r} is not an absolute file URI (the part after file:// is read as a "
                "host name); write file:///absolute/path/data.csv, three slashes"
            )
        if parts.scheme == "s3" and (not parts.netloc or not parts.path.strip("/")):
            raise ValueError(f"{value!r} names no object; write s3://bucket/key")
        return value

    return AfterValidator(check)


def _nonzero_duration(value: str) -> str:
    if value in ("P", "PT") or value.endswith("T"):
        raise ValueError(f"'{value}' is an empty ISO 8601 duration; write e.g. P30D or PT12H")
    return value


IsoDuration = Annotated[
    str,
    Field(pattern=r"^P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?)?$"),
    AfterValidator(_nonzero_duration),
]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True)


ROLE_ARN = r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"
RoleArn = Annotated[str, Field(pattern=ROLE_ARN)]


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`override` over `base`, mappings merged key by key (lists and values replace)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged

"""Which hosts a job runs on, and which of them this process is: resourceconfig.json.

Training and processing jobs of N instances give each instance a ``resourceconfig.json``
naming every host (``hosts``, in order) and its own (``current_host``): training jobs in
``/opt/ml/input/config``, processing jobs in ``/opt/ml/config`` (tabular.contract). A job run
by hand has no such file and is one host. Standard library only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .contract import CURRENT_HOST_KEY, HOSTS_KEY, RESOURCE_CONFIG_FILE
from .errors import JobError

SINGLE_HOST = "algo-1"
"""The host name of a job run without resourceconfig.json (by hand)."""


@dataclass(frozen=True)
class Cluster:
    """The hosts of the job (resourceconfig.json) and which of them this process is."""

    hosts: tuple[str, ...]
    current_host: str

    @property
    def first_host(self) -> str:
        """The host that runs the tracker and writes the model."""
        return self.hosts[0]

    @property
    def is_first(self) -> bool:
        return self.current_host == self.first_host

    @property
    def distributed(self) -> bool:
        return len(self.hosts) > 1


ONE_HOST = Cluster((SINGLE_HOST,), SINGLE_HOST)


def read_cluster(config_dir: Path, error: type[JobError] = JobError) -> Cluster:
    """The job's hosts from ``resourceconfig.json``; one host when there is none (by hand).
    A file that cannot be read raises ``error`` naming it."""
    path = config_dir / RESOURCE_CONFIG_FILE
    if not path.is_file():
        return ONE_HOST
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        hosts = tuple(str(host) for host in document[HOSTS_KEY])
        current = str(document[CURRENT_HOST_KEY])
    except (ValueError, KeyError, TypeError) as exc:
        raise error(f"{path}: not a readable resource config ({exc!r}).") from None
    if current not in hosts:
        raise error(f"{path}: current_host {current!r} is not one of hosts {hosts}.")
    return Cluster(hosts, current)

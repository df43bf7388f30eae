"""What a run's Prometheus scrapes, backend-neutral: the jobs, the targets from the run state, the
server's configuration with file-based service discovery, and the discovery files.

The jobs are the ones the dashboards and grafana/README.md name: `harness-node` (each running
node's control API), `harness-seeder`, `harness-controller`. A backend writes the configuration once
and rewrites the discovery files whenever a member moves or stops (`Backend.update_monitor`);
Prometheus rereads them by itself, with no restart.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from harness.backends.base import RunState
from harness.plan.model import Plan

JOBS = ("harness-node", "harness-seeder", "harness-controller")
# 5 s: a 1,000-node run is 1,000 scrapes per interval on the same machine as the nodes.
SCRAPE_INTERVAL = "5s"
SD_REFRESH_INTERVAL = "2s"  # how soon a rewritten discovery file is noticed (file watches may miss renames)


def _host_port(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}"


def scrape_targets(state: RunState, plan: Plan) -> dict[str, list[str]]:
    """job -> host:port of every member that should answer now (stopped nodes are left out)."""
    stopped = set(state.stopped_nodes)
    nodes = [_host_port(state.endpoints[n]["control_url"]) for n in plan.names()
             if n not in stopped and n in state.endpoints]
    seeder = plan.seeder
    seeders = [_host_port(state.endpoints[seeder.name]["control_url"])] if seeder and seeder.name in state.endpoints else []
    controllers = [_host_port(state.controller_url)] if state.controller_url else []
    return {"harness-node": nodes, "harness-seeder": seeders, "harness-controller": controllers}


def prometheus_config(sd_dir: Path) -> dict[str, Any]:
    """The server's configuration: one job per member kind, targets from files in ``sd_dir``."""
    return {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL,
                   "evaluation_interval": SCRAPE_INTERVAL},
        "scrape_configs": [{"job_name": job, "file_sd_configs": [
            {"files": [str(sd_dir / f"{job}.json")], "refresh_interval": SD_REFRESH_INTERVAL}]} for job in JOBS],
    }


def write_config(path: Path, sd_dir: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(prometheus_config(sd_dir), indent=1) + "\n")  # JSON is YAML


def write_targets(sd_dir: Path, targets: dict[str, list[str]], labels: dict[str, str] | None = None) -> None:
    """One discovery file per job, each replaced atomically: Prometheus may read it at any moment."""
    sd_dir.mkdir(parents=True, exist_ok=True)
    for job in JOBS:
        tmp = sd_dir / f".{job}.json.tmp"
        tmp.write_text(json.dumps([{"targets": targets.get(job, []), "labels": labels or {}}]))
        os.replace(tmp, sd_dir / f"{job}.json")

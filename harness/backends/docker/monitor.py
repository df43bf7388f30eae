"""The monitoring stack of a Docker run (`harness deploy --monitor`): Prometheus scraping every
node, the seeder and the controller, and Grafana with the repository's provisioning and dashboards.

Where they sit, and why:
- Prometheus runs in the host's network namespace and listens on the run network's gateway IP
  (the host side of the run's bridge), port 9090. From there it reaches every container IP and the
  controller, which serves its metrics on the host's 127.0.0.1; and since every run has its own
  bridge, two runs never compete for the port. Its targets are the endpoints the backend
  recorded (static), each labelled with the run id, the member and its role.
- Grafana runs on the run's network at a static IP (the subnet's last host), resolving the name
  `prometheus` (the provisioned datasource's URL, http://prometheus:9090) to that gateway IP.
Both carry the run's labels, so `down` removes them with everything else.
"""

from __future__ import annotations

import ipaddress
import pathlib
from typing import Any

import yaml

from harness.plan.model import Plan

PROMETHEUS_IMAGE = "prom/prometheus:latest"
GRAFANA_IMAGE = "grafana/grafana:latest"
PROMETHEUS_PORT = 9090
GRAFANA_PORT = 3000
SCRAPE_INTERVAL = "5s"  # the datasource's timeInterval (grafana/provisioning.py)
PROMETHEUS_CONFIG = "/etc/prometheus/prometheus.yml"
GRAFANA_PROVISIONING = "/etc/grafana/provisioning"
GRAFANA_DASHBOARDS = "/var/lib/grafana/dashboards/harness"  # grafana/provisioning/dashboards/harness.yaml


def gateway(subnet: str) -> str:
    """The bridge's own IP: the subnet's first host (engine.create_network sets it so)."""
    return str(ipaddress.ip_network(subnet).network_address + 1)


def grafana_ip(subnet: str) -> str:
    return str(ipaddress.ip_network(subnet).broadcast_address - 1)


def targets(plan: Plan, endpoints: dict[str, dict[str, Any]], controller_url: str | None) -> list[dict[str, Any]]:
    """Prometheus static_configs: one per member, labelled member/role, at its control endpoint."""
    roles = {n.name: n.role for n in [*plan.peers(), *([plan.seeder] if plan.seeder else [])]}
    out = []
    for member, record in sorted(endpoints.items()):
        out.append({"targets": [str(record["control_url"]).split("://", 1)[1].rstrip("/")],
                    "labels": {"member": member, "role": roles.get(member, "node")}})
    if controller_url:
        out.append({"targets": [controller_url.split("://", 1)[1].rstrip("/")],
                    "labels": {"member": "controller", "role": "controller"}})
    return out


def prometheus_config(run_id: str, static: list[dict[str, Any]]) -> str:
    return yaml.safe_dump({
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL,
                   "external_labels": {"run": run_id}},
        "scrape_configs": [{"job_name": "harness", "metrics_path": "/metrics", "static_configs": static}],
    }, sort_keys=False)


def prometheus_spec(image: str, subnet: str) -> dict[str, Any]:
    """Keyword arguments of containers.create (besides name and labels)."""
    return {"image": image, "network_mode": "host",
            "command": [f"--config.file={PROMETHEUS_CONFIG}", "--storage.tsdb.path=/prometheus",
                        f"--web.listen-address={gateway(subnet)}:{PROMETHEUS_PORT}"]}


def grafana_dir() -> pathlib.Path:
    """grafana/ of the source checkout (provisioning/ and dashboards/ are mounted from it)."""
    import harness

    return pathlib.Path(harness.__file__).resolve().parents[1] / "grafana"


def grafana_spec(image: str, subnet: str, source: pathlib.Path | None = None) -> dict[str, Any]:
    """Grafana on the run's network: provisioning and dashboards mounted read-only, anonymous
    viewers (a local testbed), and `prometheus` resolving to the gateway Prometheus listens on."""
    source = source or grafana_dir()
    return {
        "image": image,
        "environment": {"GF_AUTH_ANONYMOUS_ENABLED": "true", "GF_AUTH_ANONYMOUS_ORG_ROLE": "Viewer",
                        "GF_ANALYTICS_REPORTING_ENABLED": "false", "GF_ANALYTICS_CHECK_FOR_UPDATES": "false"},
        "volumes": {str(source / "provisioning"): {"bind": GRAFANA_PROVISIONING, "mode": "ro"},
                    str(source / "dashboards"): {"bind": GRAFANA_DASHBOARDS, "mode": "ro"}},
        "extra_hosts": {"prometheus": gateway(subnet)},
    }


def urls(subnet: str, grafana: bool) -> dict[str, str]:
    out = {"prometheus": f"http://{gateway(subnet)}:{PROMETHEUS_PORT}"}
    if grafana:
        out["grafana"] = f"http://{grafana_ip(subnet)}:{GRAFANA_PORT}"
    return out

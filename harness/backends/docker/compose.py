"""`harness render SCENARIO --backend docker --out DIR`: the docker backend's deployment as a
compose file, for people who prefer `docker compose up`.

The same layout as the backend (layout.py: a fixed subnet, static IPs, the transport tables), the
same configs (node_config, container_node_config, container_attack_config, seeder_config) and labels. What differs, and
why: compose has no way to copy a file into a container with an owner and mode, so the configs are
bind-mounted from DIR/config/ (mode 0600, they hold the control token) and the services run as the
user who rendered them (``user``), which can read them; datadirs are then under /tmp of each
container. The controller is not part of it: compose starts the network, `harness` plays
scenarios against a deployed run.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import yaml

from harness.backends.base import labels_for
from harness.backends.docker.engine import NODE_UID
from harness.backends.docker.layout import (
    container_attack_config, container_node_config, endpoints_table, layout, transport,
)
from harness.backends.node_config import node_config, seeder_config
from harness.errors import BackendUnavailable
from harness.plan.model import Plan
from harness.scenario.deploy import Deploy

COMPOSE_FILE = "compose.yaml"
SUBNET = "10.250.0.0/20"  # fixed: a rendered file does not know which subnets a machine has free
RUN_ID = "compose"
CONFIG_IN_CONTAINER = "/etc/harness-node"
DATADIR = "/tmp/harness-node"
_LIMIT_KEYS = {"mem_limit": "mem_limit", "nano_cpus": "cpus", "pids_limit": "pids_limit"}


def _limits(limits: dict[str, Any]) -> dict[str, Any]:
    out = {_LIMIT_KEYS[k]: v for k, v in limits.items()}
    if "cpus" in out:
        out["cpus"] = out["cpus"] / 1e9
    return out


def _user() -> str:
    """Who the services run as: the rendering user, who can read the 0600 configs; never root
    (root renders for the image's own user, and `write` hands the configs to it)."""
    return f"{NODE_UID}:{NODE_UID}" if os.getuid() == 0 else f"{os.getuid()}:{os.getgid()}"


def compose(plan: Plan, image: str, config_dir: str = "./config", user: str | None = None,
            token: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(compose document, {config file name: its JSON content})."""
    if any(n.role == "bitcoind" for n in plan.peers()):
        # its image is built from the binary at deploy time (bitcoind.py); a compose file has no such step
        raise BackendUnavailable("the compose export cannot run bitcoind members yet; deploy with --backend docker")
    deploy = Deploy.model_validate(plan.scenario.get("deploy") or {})
    lay = layout(plan, SUBNET, deploy.nodes_per_container)
    token = token or secrets.token_hex(16)
    user = user or _user()
    tables = transport(plan, lay)
    services: dict[str, Any] = {}
    files: dict[str, Any] = {}
    for c in lay.containers:
        if c.kind == "seeder":
            assert plan.seeder is not None
            config = seeder_config(plan.seeder, token)
            config.update(dns_host=c.ip, control_host=c.ip, endpoints=endpoints_table(plan, lay))
            command, role, limits = ["seeder", "--config", f"{CONFIG_IN_CONTAINER}/{c.member}.json"], "seeder", deploy.resources.seeder
        elif c.kind == "attacker":
            config = container_attack_config(plan, lay, c.member, token)
            command, role, limits = ["attack", "--config", f"{CONFIG_IN_CONTAINER}/{c.member}.json"], "attacker", deploy.resources.node
        else:
            config = {"nodes": [container_node_config(node_config(plan.node(n), f"{DATADIR}/{n}", token, tables[n]),
                                                      plan.node(n), plan, lay) for n in c.nodes]}
            command = ["host", "--config", f"{CONFIG_IN_CONTAINER}/{c.member}.json"]
            role, limits = (plan.node(c.nodes[0]).role if len(c.nodes) == 1 else "node-pack"), deploy.resources.node
        files[f"{c.member}.json"] = config
        services[c.member] = {
            "image": image, "command": command, "user": user,
            "labels": labels_for(RUN_ID, c.member, role, plan.name),
            "networks": {"harness": {"ipv4_address": c.ip}},
            "volumes": [f"{config_dir}/{c.member}.json:{CONFIG_IN_CONTAINER}/{c.member}.json:ro"],
            "cap_drop": ["ALL"], "security_opt": ["no-new-privileges:true"],
            **_limits(limits.docker_limits()),
        }
    document = {
        "version": "2.4",  # mem_limit/cpus/pids_limit at service level; read by Compose v1 and v2
        "services": services,
        "networks": {"harness": {"driver": "bridge", "labels": labels_for(RUN_ID, "network", "network", plan.name),
                                 "ipam": {"config": [{"subnet": SUBNET}]}}},
    }
    return document, files


def write(plan: Plan, image: str, out: Path) -> list[Path]:
    """Write DIR/compose.yaml and DIR/config/<member>.json (0600); returns the files written."""
    document, files = compose(plan, image)
    (out / "config").mkdir(parents=True, exist_ok=True)
    written = []
    for name, data in files.items():
        path = out / "config" / name
        path.touch(mode=0o600)
        os.chmod(path, 0o600)
        path.write_text(json.dumps(data, indent=1))
        if os.getuid() == 0:
            os.chown(path, NODE_UID, NODE_UID)
        written.append(path)
    compose_path = out / COMPOSE_FILE
    compose_path.write_text(f"# Rendered by `harness render {plan.name} --backend docker`: scenario {plan.name}, "
                            f"plan {plan.digest[:12]}.\n# Start: docker compose up -d   Stop: docker compose down\n"
                            + yaml.safe_dump(document, sort_keys=False))
    return [compose_path, *written]

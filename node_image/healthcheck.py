"""The image's HEALTHCHECK: healthy when every control API the container's config names answers
GET /status (a node alone, a host of many nodes, or the seeder). Standard library only, so the
check costs no import of the node; exit 0 healthy, 1 not (Docker's convention)."""

import glob
import json
import sys
import urllib.request

TIMEOUT_SECONDS = 3


def control_urls(config: dict) -> list:
    if "nodes" in config:  # harness-node host
        return [f"http://{n.get('control_bind') or n.get('bind')}:{n['control_port']}/status"
                for n in config["nodes"] if n.get("control_port")]
    if "dns_port" in config or "control_host" in config:  # the seeder
        return [f"http://{config.get('control_host') or config.get('dns_host')}:{config.get('control_port', 8053)}/status"]
    if config.get("control_port"):
        return [f"http://{config.get('control_bind') or config.get('bind', '127.0.0.1')}:{config['control_port']}/status"]
    return []


def main() -> int:
    urls = []
    for path in glob.glob("/etc/harness-node/*.json"):
        with open(path) as f:
            urls += control_urls(json.load(f))
    if not urls:
        return 1
    try:
        for url in urls:
            with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:
                if response.status != 200:
                    return 1
    except OSError:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A bitcoind member placed by a resolved transport table (Kubernetes: `harness-node bitcoind
--transport`): its planned -connect peers become the pods' IP:port, and what bitcoind reports maps
back to planned addresses, except an inbound link from a packed pod (one IP, several nodes)."""

from __future__ import annotations

import json
from pathlib import Path

from harness_node.bitcoind.launch import BitcoindConfig, placed

ENDPOINTS = {"127.2.0.1": "10.244.0.7:18444", "127.3.0.1": "10.244.0.8:18446", "127.4.0.1": "10.244.0.8:18444"}
INBOUND = {"10.244.0.7": ["127.2.0.1"], "10.244.0.8": ["127.3.0.1", "127.4.0.1"]}  # pod .8 hosts two nodes


def test_connect_peers_are_dialled_at_their_pods_and_reported_by_planned_address() -> None:
    data = {"connect": ["127.2.0.1:18444", "127.3.0.1:18444", "127.9.0.1:18444"]}  # 127.9.0.1 did not resolve
    out = placed(data, ENDPOINTS, INBOUND)
    assert out["connect"] == ["10.244.0.7:18444", "10.244.0.8:18446"]  # the unresolved peer is left out, as if down
    config = BitcoindConfig(name="b", binary="/bin/true", datadir="/tmp", address="0.0.0.0", port=18444, rpc_port=18446,
                            control_port=18445, control_token="t", connect=out["connect"],
                            peer_addresses=out["peer_addresses"])
    assert config.planned("10.244.0.8:18446") == "127.3.0.1"  # a peer it dialled: by ip:port, even in a packed pod
    assert config.planned("10.244.0.7:50312") == "127.2.0.1"  # an inbound link from a pod of one node
    assert config.planned("10.244.0.8:50999") == "10.244.0.8"  # from a packed pod: stays the pod IP (the limit)


def test_the_token_file_and_the_table_complete_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "member.json"
    path.write_text(json.dumps({"name": "bitcoind-0", "binary": "/usr/local/bin/bitcoind", "datadir": "/d",
                                "address": "0.0.0.0", "port": 18444, "rpc_port": 18446, "control_port": 18445,
                                "identity": "127.240.0.1", "connect": ["127.4.0.1:18444"]}))
    config = BitcoindConfig.from_file(path, token="from-the-secret", transport=(ENDPOINTS, INBOUND))
    assert config.control_token == "from-the-secret" and config.connect == ["10.244.0.8:18444"]
    assert config.identity == "127.240.0.1"

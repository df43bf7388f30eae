"""Control API safety (issue 9 item 7): no open mutating API off loopback, hostile values and
headers are client errors (4xx), never a 500."""

from __future__ import annotations

import socket

import pytest

from harness_node.config import NodeConfig, load_host_configs
from harness_node.seeder.config import SeederConfig, SeederConfigError

from conftest import refused_by_cli
from test_control import TOKEN, call, host  # noqa: F401  (host: the fixture)


@pytest.mark.parametrize("where", [{"bind": "0.0.0.0"}, {"bind": "127.0.0.1", "control_bind": "10.0.0.1"}])
def test_a_control_api_off_loopback_without_a_token_is_a_config_error(where):
    with pytest.raises(ValueError, match="control_token is required .*not loopback"):
        NodeConfig(control_port=18445, **where)
    NodeConfig(control_port=18445, control_token="t", **where)  # with a token it is fine
    NodeConfig(bind="127.0.0.1", control_port=18445)  # loopback needs none
    NodeConfig(bind="0.0.0.0")  # no control API at all: nothing to protect


def test_the_node_cli_refuses_an_open_control_api_with_one_line_and_exit_2():
    refused_by_cli("run", "--bind", "0.0.0.0", "--control-port", "0", says="control_token is required")


def test_a_host_token_file_counts_before_the_check(tmp_path):
    """k8s pods run `host --token-file`: their config holds no token, and binds 0.0.0.0."""
    path = tmp_path / "host.json"
    path.write_text('{"nodes": [{"name": "a", "bind": "0.0.0.0", "control_port": 18445}]}')
    with pytest.raises(ValueError, match="control_token is required"):
        load_host_configs(path)
    assert load_host_configs(path, control_token="from-file")[0].control_token == "from-file"


def test_the_seeder_refuses_an_open_control_api(tmp_path):
    with pytest.raises(SeederConfigError, match="control_token is required"):
        SeederConfig(dns_host="0.0.0.0").require_token_off_loopback()
    SeederConfig(dns_host="0.0.0.0", control_token="t").require_token_off_loopback()
    config = tmp_path / "seeder.yaml"
    config.write_text("dns_host: 0.0.0.0\ndns_port: 0\ncontrol_port: 0\n")
    refused_by_cli("seeder", "--config", str(config), says="control_token is required")


@pytest.mark.parametrize("duration", ["true", "false", "NaN", "Infinity", "-Infinity", "1e400"])
def test_a_ban_duration_must_be_a_finite_positive_number(lt, host, duration):  # noqa: F811
    node = next(iter(host.nodes.values()))
    raw = ('{"address": "127.1.2.3", "duration": %s}' % duration).encode()
    status, answer = call(node.control_address, "POST", "/bans", raw=raw)
    assert status == 400 and "finite" in answer["error"]
    assert not lt.eval(lambda: node.is_banned("127.1.2.3"))


def _raw_post(addr: tuple[str, int], authorization: bytes) -> bytes:
    with socket.create_connection(addr, timeout=10) as s:
        s.sendall(b"POST /bans HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n"
                  b"Connection: close\r\nAuthorization: " + authorization + b"\r\n\r\n{}")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data


@pytest.mark.parametrize("authorization", [b"Bearer \xff\xfe\xfd", b"\xc3\x28", b"Bearer " + TOKEN.encode() + b"\xff"])
def test_a_non_utf8_authorization_header_is_401_not_500(host, authorization):  # noqa: F811
    node = next(iter(host.nodes.values()))
    answer = _raw_post(node.control_address, authorization)
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]

"""A run with bitcoind members on the docker backend, for the tests that need one: the node image
built from the local base, the bitcoind image built by the backend from it and the fetched binary,
the scenario deployed; on the way out `down` must leave nothing labelled with the run, and the
bitcoind image the run built is removed (only this test's objects are touched)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import pytest

from harness.backends.base import RunState
from harness.backends.docker import bitcoind as dbtc
from harness.backends.docker import engine
from harness.backends.images import LOCAL_BASE_IMAGE, build_node_image
from harness.run import runner
from tests.bitcoind import require_bitcoind
from tests.real import docker_engine

BASE_IMAGE = os.environ.get("HARNESS_BASE_IMAGE", LOCAL_BASE_IMAGE)


@dataclass(frozen=True)
class DockerBitcoindRun:
    client: Any  # docker.DockerClient
    state: RunState
    run_dir: Path
    bitcoind_image: str


@contextmanager
def bitcoind_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tag: str, scenario: str) -> Iterator[DockerBitcoindRun]:
    binary = str(require_bitcoind())
    client = docker_engine(BASE_IMAGE)
    build_node_image(tag, BASE_IMAGE, client=client)
    monkeypatch.setenv("HARNESS_IMAGE", tag)
    monkeypatch.setenv("HARNESS_BITCOIND", binary)
    path, run_dir = tmp_path / "scenario.yaml", tmp_path / "run"
    path.write_text(scenario)
    bitcoind_image = dbtc.image_tag(binary, client.images.get(tag).id)
    try:
        state = runner.deploy(path, "docker", run_dir, wait=True)
        try:
            yield DockerBitcoindRun(client, state, run_dir, bitcoind_image)
        finally:
            summary = runner.down(run_dir)
        assert not summary["left"].get("container")
        assert not any(engine.of_run(client, state.run_id))
    finally:
        try:
            client.images.remove(bitcoind_image, force=True)
        except docker.errors.ImageNotFound:
            pass
        client.close()

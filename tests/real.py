"""The one way a test asks for a real component it cannot run without.

Locally a missing component skips the test, with the reason and how to install it. In CI
(`CI=true`, as CI services set it, or `HARNESS_REQUIRE_REAL=1`) it FAILS the test instead: a CI run
that skipped its real parts would pass without testing them.

    promtool = require("promtool")          # the executable's path, or skip/fail
    missing("docker", "no engine answers")  # when the test found out itself (an engine that is down)
"""

from __future__ import annotations

import os
import shutil
from typing import Any, NoReturn

import pytest

# How to get each component; the names are the ones tests pass to require() / missing().
INSTALL = {
    "bitcoind": "run `bash scripts/fetch-bitcoind.sh`, or set HARNESS_BITCOIND to a bitcoind binary",
    "docker": "install and start a Docker engine and create the base image the node image builds on "
              "(README: `docker build --build-arg BASE_IMAGE=...`; HARNESS_BASE_IMAGE names it)",
    "prometheus": "apt-get install prometheus",
    "promtool": "apt-get install prometheus (promtool comes with it)",
    "dig": "apt-get install dnsutils",
    "docker-compose": "apt-get install docker-compose",
    "packet-socket": "run the tests as root (a packet socket needs CAP_NET_RAW), in `unshare -n` as the README says",
}
ENV_REQUIRE = "HARNESS_REQUIRE_REAL"


def required() -> bool:
    """Must every real component be present (CI), rather than skipped when missing (a laptop)?"""
    return os.environ.get("CI", "").lower() in ("true", "1", "yes") or os.environ.get(ENV_REQUIRE, "") == "1"


def missing(component: str, why: str) -> NoReturn:
    """Skip the calling test, or fail it in CI, naming the component, why and how to install it."""
    install = INSTALL.get(component, "install it")
    message = f"{component} is missing: {why}; to install: {install}"
    if required():
        pytest.fail(f"{message} (CI=true or {ENV_REQUIRE}=1: real components must be present, not skipped)",
                    pytrace=False)
    pytest.skip(message)


def require(executable: str) -> str:
    """The path of a real executable on PATH (prometheus, promtool, dig), or missing()."""
    path = shutil.which(executable)
    if path is None:
        missing(executable, f"no `{executable}` on PATH")
    return path


def docker_engine(base_image: str) -> Any:
    """A client of a Docker engine that answers and holds ``base_image`` (never pulled), or missing()."""
    import docker  # a dependency of the harness: installed with it, so never a reason to skip
    import requests  # the SDK's transport; its errors mean "no engine"

    try:
        client = docker.from_env()
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as e:
        missing("docker", f"no Docker engine answers ({e})")
    try:
        client.images.get(base_image)
    except docker.errors.ImageNotFound:
        client.close()
        missing("docker", f"base image {base_image} is missing (never built or pulled)")
    return client

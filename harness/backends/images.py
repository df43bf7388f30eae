"""The node container image: build it from node_image/ with the Docker SDK.

One image serves every role (node, seeder, host); the docker backend and tests/node/test_image.py
build it here so the build context, build argument and error handling live in one place.
"""

from __future__ import annotations

import pathlib
from typing import TYPE_CHECKING

from harness.errors import HarnessError

if TYPE_CHECKING:
    import docker

# Where the default base (python:3.12-slim) cannot be pulled, a base of this name built locally
# (by the CI set-up) is used instead: `--build-arg BASE_IMAGE=harness-base:bookworm`.
LOCAL_BASE_IMAGE = "harness-base:bookworm"
_LOG_TAIL_LINES = 20  # of the build log, quoted in an ImageBuildError


class ImageBuildError(HarnessError):
    """The node image could not be built (no engine, no context, a failing build step)."""


def node_image_context() -> pathlib.Path:
    """node_image/ (Dockerfile, pyproject.toml, harness_node/): the directory harness_node lives in.

    Present in a source checkout (the editable install); a wheel install of harness ships no Dockerfile.
    """
    import harness_node

    context = pathlib.Path(harness_node.__file__).resolve().parents[1]
    if not (context / "Dockerfile").is_file():
        raise ImageBuildError(f"no Dockerfile in {context}: building the node image needs a source checkout "
                              "of harness installed with `pip install -e .`")
    return context


def build_node_image(tag: str, base_image: str | None = None, client: docker.DockerClient | None = None) -> str:
    """Build node_image/ as `tag` and return the image id ("sha256:...").

    base_image: passed as the BASE_IMAGE build argument and must already be on the engine (it is
    never pulled); None: the Dockerfile's default base, which the engine pulls if it lacks it.
    Cached layers are reused. client: a docker.DockerClient (default docker.from_env()).
    """
    import docker  # lazy: only the docker backend and its tests need the SDK

    if client is None:
        try:
            client = docker.from_env()
        except docker.errors.DockerException as e:
            raise ImageBuildError(f"no Docker engine answers: {e}") from None
    buildargs = {"BASE_IMAGE": base_image} if base_image else {}
    if base_image:
        try:
            client.images.get(base_image)
        except docker.errors.ImageNotFound:
            raise ImageBuildError(f"base image {base_image} is not on the Docker engine (it is never pulled); "
                                  f"build or pull it first, or pass another base image") from None
    try:
        image, _ = client.images.build(path=str(node_image_context()), tag=tag, buildargs=buildargs,
                                       pull=False, rm=True, forcerm=True)
    except docker.errors.BuildError as e:
        lines = [str(chunk.get("stream") or chunk.get("error") or "").rstrip() for chunk in e.build_log]
        tail = "\n".join([line for line in lines if line][-_LOG_TAIL_LINES:])
        raise ImageBuildError(f"building {tag} failed: {e.msg}\n{tail}") from None
    except docker.errors.APIError as e:
        raise ImageBuildError(f"building {tag} failed: {e.explanation or e}") from None
    return image.id

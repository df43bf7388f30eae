"""Backend registry: name -> Backend class. The CLI's --backend choices come from here."""

from __future__ import annotations

from typing import Any

from harness.backends.base import Backend, RunStore
from harness.errors import BackendUnavailable


def _local() -> type[Backend]:
    from harness.backends.local.backend import LocalBackend  # imported lazily: keeps `harness --help` fast

    return LocalBackend


def _docker() -> type[Backend]:
    from harness.backends.docker.backend import DockerBackend

    return DockerBackend


def _k8s() -> type[Backend]:
    from harness.backends.k8s.backend import K8sBackend

    return K8sBackend


BACKENDS = {"local": _local, "docker": _docker, "k8s": _k8s}


def names() -> list[str]:
    """Every backend name the CLI accepts."""
    return list(BACKENDS)


def backend_class(name: str) -> type[Backend]:
    if name in BACKENDS:
        return BACKENDS[name]()
    raise BackendUnavailable(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")


def make_backend(name: str, run: RunStore, **options: Any) -> Backend:
    """The backend ``name`` bound to ``run``. ``options`` are hints a backend may take (its
    ``OPTIONS``, e.g. the local backend's ``watch_parent``); a backend ignores the others."""
    cls = backend_class(name)
    return cls(run, **{k: v for k, v in options.items() if k in cls.OPTIONS})

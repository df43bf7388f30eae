"""Backend registry: name -> Backend class. The CLI's --backend choices come from here."""

from __future__ import annotations

from harness.backends.base import Backend
from harness.errors import BackendUnavailable
from harness.run.rundir import RunDir




def _local() -> type[Backend]:
    from harness.backends.local.backend import LocalBackend  # imported lazily: keeps `harness --help` fast

    return LocalBackend


BACKENDS = {"local": _local}
# Named on purpose so that `--backend docker` says why, instead of "unknown backend".
UNAVAILABLE = {
    "docker": "the docker backend is not built yet; use --backend local",
    "k8s": "the k8s backend is not built yet; use --backend local",
}


def backend_class(name: str) -> type[Backend]:
    if name in BACKENDS:
        return BACKENDS[name]()
    if name in UNAVAILABLE:
        raise BackendUnavailable(UNAVAILABLE[name])
    raise BackendUnavailable(f"unknown backend {name!r}; choose one of {sorted(BACKENDS)}")


def make_backend(name: str, run: RunDir, **options: object) -> Backend:
    return backend_class(name)(run, **options)

"""The private DNS seeder role: a sipa/bitcoin-seeder style crawler, an authoritative DNS server for
the seed zone, and answer modes from honest to malicious, switchable at runtime (service.py).

Names are loaded on first use: `harness-node run` registers the `seeder` subcommand through
`seeder.cli` and must not pay for dnslib, dnspython and aiohttp it never uses (~16 MB of RSS).
"""

from importlib import import_module
from typing import Any

_WHERE = {"SeederConfig": "config", "SeederConfigError": "config", "MODES": "modes", "ModeError": "modes",
          "Seeder": "service", "main_from_args": "service", "run_seeder": "service"}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_WHERE[name]}"), name)

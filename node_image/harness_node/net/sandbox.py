"""The dial allowlist: a testbed node never dials an address outside the scenario's networks.

Addresses outside the allowlist may still be stored (addrman experiments count them); only dialling
is refused (protocol.md, testbed adaptation 6). Default: loopback only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from ..memo import BoundedMemo

DEFAULT_ALLOWLIST = ("127.0.0.0/8",)
_VERDICT_MEMOS: dict[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], BoundedMemo[str, bool]] = {}


class DialRefused(ConnectionError):
    """The node will not dial this address (sandbox, ban, already connected); `reason` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class SandboxError(DialRefused):
    """A dial outside the allowlist."""


class Sandbox:
    __slots__ = ("networks", "refused", "_verdicts")

    def __init__(self, allowlist: Iterable[str] = DEFAULT_ALLOWLIST) -> None:
        self.networks = tuple(ipaddress.ip_network(n, strict=False) for n in allowlist)
        self.refused = 0
        # asked for every dial and every address a dial considers; the allowlist never changes,
        # so each answer is kept (bounded: cleared when full), in one memo for every node of the
        # process with the same allowlist: with a memo per node, each of a process's ~830 nodes
        # parsed the ~10 addresses it dialled while 10,000 formed their graph, and kept a dict
        self._verdicts = _VERDICT_MEMOS.setdefault(self.networks, BoundedMemo(1 << 14))

    def allows(self, ip: str) -> bool:
        verdict = self._verdicts.get(ip)
        return verdict if verdict is not None else self._verdicts.put(ip, self._allows(ip))

    def _allows(self, ip: str) -> bool:
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return False
        return any(addr.version == n.version and addr in n for n in self.networks)

    def check(self, ip: str) -> None:
        """Raise SandboxError (and count it) if `ip` may not be dialled."""
        if not self.allows(ip):
            self.refused += 1
            raise SandboxError("sandbox", f"{ip} is outside the dial allowlist {[str(n) for n in self.networks]}")

"""The control APIs' one authentication rule, shared by the node, the seeder and the attacker:
mutating calls carry `Authorization: Bearer <token>` when a token is set, compared in constant
time; a control API reachable off loopback must have a token (sandboxed and safe by default)."""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping


def bearer_ok(headers: Mapping[str, str], token: str | None) -> bool:
    """True when no token is configured or the request carries exactly `Bearer <token>`."""
    if not token:
        return True
    given = headers.get("Authorization", "")
    try:
        given_bytes = given.encode()
    except UnicodeEncodeError:  # undecodable bytes (aiohttp keeps them as surrogates): not our token
        return False
    return hmac.compare_digest(given_bytes, f"Bearer {token}".encode())


def require_token_off_loopback(bind: str, token: str | None, what: str) -> None:
    """ValueError naming `what` if a control API bound to a non-loopback address has no token."""
    try:
        loopback = ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = bind == "localhost"
    if not loopback and not token:
        raise ValueError(f"{what}: the control API binds {bind}, off loopback, so it needs a control token "
                         f"(control_token or --token-file)")

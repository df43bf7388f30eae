"""Fixtures shared by every test package."""

from tests.bitcoind import bitcoind_factory  # noqa: F401  (a fixture: the real bitcoind, loopback only)

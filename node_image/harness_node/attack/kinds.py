"""Every module that registers an attacker kind, imported once so `ATTACKS` knows them all.
Adding a kind: write its module in this package and add it here (docs/attackers.md)."""

from __future__ import annotations

import importlib

KIND_MODULES: tuple[str, ...] = ("spam", "spy", "eclipse")


def load_kinds() -> None:
    for module in KIND_MODULES:
        importlib.import_module(f"{__package__}.{module}")

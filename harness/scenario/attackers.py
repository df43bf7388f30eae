"""Attacker kinds a scenario may deploy. The attack issue fills in their params models; until then
each kind takes a free-form `params` mapping (passed to the attacker untouched).

Adding a kind is one local change: a params class with `@ATTACKER_KINDS.register(...)`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from harness.scenario.registry import Registry

ATTACKER_KINDS: Registry = Registry("attacker kind")


class AttackerParams(BaseModel):
    # Free-form for now: the attack issue replaces these with typed, extra="forbid" models.
    model_config = ConfigDict(extra="allow")


@ATTACKER_KINDS.register("spam", description="Floods its targets with invalid or oversized messages.")
class SpamParams(AttackerParams):
    pass


@ATTACKER_KINDS.register("eclipse", description="Heilman-style: fills tried/new tables and inbound slots.")
class EclipseParams(AttackerParams):
    pass


@ATTACKER_KINDS.register("sybil", description="Many identities that join honestly and then misbehave.")
class SybilParams(AttackerParams):
    pass


@ATTACKER_KINDS.register("spy", description="A supernode connecting to everyone to guess tx origins (first-spy).")
class SpyParams(AttackerParams):
    pass


@ATTACKER_KINDS.register("malicious_seeder", description="A rogue DNS seeder answering with attacker addresses.")
class MaliciousSeederParams(AttackerParams):
    pass

"""Attackers: one `harness-node attack` process hosts one or many attacker identities, each
dialling from its own planned address with the reusable client peer (net.client); kinds register
in `registry.ATTACKS`. See docs/attackers.md."""

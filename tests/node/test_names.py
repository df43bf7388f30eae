"""Every list of names lives in harness_node.names; the node's own enums and tables agree with it."""

from __future__ import annotations

from dataclasses import fields

from harness_node import config, names
from harness_node.peering.misbehaviour import Policy
from harness_node.peering.peerconfig import Countermeasures
from harness_node.seeder.modes import MODES


def test_misbehaviour_policies_agree():
    assert tuple(p.value for p in Policy) == names.MISBEHAVIOUR_POLICIES


def test_countermeasure_switches_agree():
    assert tuple(f.name for f in fields(Countermeasures)) == names.COUNTERMEASURES


def test_seeder_modes_agree():
    assert tuple(MODES) == names.SEEDER_MODES


def test_the_node_config_validates_against_the_vocabularies():
    assert config.RELAY_POLICIES is names.RELAY_POLICIES
    for policy in names.RELAY_POLICIES:
        config.NodeConfig(relay_policy=policy)
    for policy in names.MISBEHAVIOUR_POLICIES:
        config.NodeConfig(misbehaviour_policy=policy)

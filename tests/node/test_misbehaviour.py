"""Misbehaviour scores and the action each era's policy takes (protocol.md §3.1, §3.2)."""

from __future__ import annotations

import pytest

from harness_node.peering.misbehaviour import DISCONNECT_ONLY, SCORES, Action, Misbehaviour, Policy


def test_under_ban_five_oversized_invs_ban_the_peer_and_four_do_not():
    mb = Misbehaviour(Policy.BAN)
    verdicts = [mb.record(1, "inv-too-large") for _ in range(5)]
    assert [v.points for v in verdicts] == [20] * 5
    assert [v.action for v in verdicts[:4]] == [Action.NONE] * 4
    assert verdicts[3].score == 80
    assert verdicts[4].score == 100
    assert verdicts[4].action is Action.BAN


def test_scores_are_per_peer():
    mb = Misbehaviour(Policy.BAN)
    for _ in range(4):
        mb.record(1, "inv-too-large")
    assert mb.record(2, "inv-too-large").action is Action.NONE
    assert mb.score(1) == 80
    assert mb.score(2) == 20


def test_under_discourage_reaching_100_discourages_instead_of_banning():
    mb = Misbehaviour("discourage")
    assert [mb.record(1, "headers-too-large").action for _ in range(5)] == [Action.NONE] * 4 + [Action.DISCOURAGE]
    assert mb.record(2, "block-invalid").action is Action.DISCOURAGE


def test_under_disconnect_the_first_scored_event_discourages():
    mb = Misbehaviour(Policy.DISCONNECT)
    assert mb.record(1, "pre-verack-message").action is Action.DISCOURAGE  # 1 point is enough


def test_events_worth_no_points_are_never_punished():
    for policy in Policy:
        mb = Misbehaviour(policy)
        for reason in ("malformed-message", "tx-policy-reject"):
            verdict = mb.record(1, reason)
            assert verdict.points == 0
            assert verdict.action is Action.NONE


def test_exempt_peers_are_scored_but_never_punished():
    for policy in Policy:
        mb = Misbehaviour(policy)
        verdicts = [mb.record(7, "block-invalid", exempt=True) for _ in range(3)]
        assert all(v.action is Action.NONE for v in verdicts)
        assert mb.score(7) == 300
        assert mb.record(7, "locator-too-large", exempt=True).action is Action.NONE


def test_scores_are_forgotten_with_the_connection():
    mb = Misbehaviour(Policy.BAN)
    for _ in range(4):
        mb.record(1, "addr-too-large")
    mb.forget(1)
    assert mb.score(1) == 0
    assert mb.record(1, "addr-too-large").action is Action.NONE
    mb.forget(99)  # unknown peer: nothing to forget, no error


def test_an_explicit_point_value_overrides_the_table():
    mb = Misbehaviour(Policy.BAN)
    assert mb.record(1, "custom", points=100).action is Action.BAN


def test_an_unknown_reason_without_points_is_refused_with_the_known_ones_listed():
    with pytest.raises(KeyError, match="inv-too-large"):
        Misbehaviour().record(1, "no-such-reason")


def test_a_custom_threshold_is_honoured():
    mb = Misbehaviour(Policy.BAN, threshold=40)
    assert [mb.record(1, "inv-too-large").action for _ in range(2)] == [Action.NONE, Action.BAN]


@pytest.mark.parametrize(
    ("reason", "points"),
    [
        ("tx-empty-vin-vout", 10),
        ("tx-null-prevout", 10),
        ("tx-oversize", 100),
        ("tx-duplicate-inputs", 100),
        ("tx-policy-reject", 0),
        ("block-bad-pow", 50),
        ("bloom-not-offered", 100),
    ],
)
def test_invalid_tx_and_block_variants_score_as_in_the_reference_table(reason, points):
    assert SCORES[reason] == points


def test_a_block_with_bad_proof_of_work_twice_bans_under_the_numeric_era():
    mb = Misbehaviour(Policy.BAN)
    assert mb.record(1, "block-bad-pow").action is Action.NONE
    assert mb.record(1, "block-bad-pow").action is Action.BAN


@pytest.mark.parametrize("policy", list(Policy))
def test_an_oversized_locator_disconnects_without_a_score_in_every_era(policy):
    assert "locator-too-large" in DISCONNECT_ONLY
    verdict = Misbehaviour(policy).record(1, "locator-too-large")
    assert verdict.action is Action.DISCONNECT
    assert verdict.score == 0

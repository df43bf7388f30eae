"""Core's context-free transaction checks (consensus ``CheckTransaction``) and the one standardness
rule that bounds memory (``MAX_STANDARD_TX_WEIGHT``), in Core's order; each failure names its
misbehaviour reason (peering/misbehaviour.py SCORES, protocol.md §3.2).

Values and scripts stay opaque otherwise: no UTXO set, so "missing inputs" and "inputs below
outputs" cannot be checked (the table leaves them out).
"""

from __future__ import annotations

from ..wire.primitives import Tx

MAX_BLOCK_WEIGHT = 4_000_000  # consensus/consensus.h
WITNESS_SCALE_FACTOR = 4  # consensus/consensus.h
MAX_STANDARD_TX_WEIGHT = 400_000  # policy/policy.h: 100 kB of non-witness data
COIN = 100_000_000
MAX_MONEY = 21_000_000 * COIN  # consensus/amount.h
NULL_PREVOUT = b"\x00" * 32 + b"\xff" * 4  # COutPoint::IsNull: null hash, index 0xffffffff


class TxInvalid(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # a misbehaviour.SCORES key


def check_transaction(tx: Tx) -> None:
    """consensus/tx_check.cpp CheckTransaction (0.16 validation.cpp), then 0.16 AcceptToMemoryPool's
    "coinbase" rule; raises TxInvalid."""
    if tx.n_in == 0 or tx.n_out == 0:
        raise TxInvalid("tx-empty-vin-vout", "bad-txns-vin-empty / bad-txns-vout-empty")
    if tx.base_size * WITNESS_SCALE_FACTOR > MAX_BLOCK_WEIGHT:
        raise TxInvalid("tx-oversize", f"bad-txns-oversize: {tx.base_size} bytes without witness")
    total = 0
    for value, _script in tx.outputs:
        total += value
        if value < 0 or value > MAX_MONEY or total > MAX_MONEY:
            raise TxInvalid("tx-bad-values", "bad-txns-vout-negative / -toolarge / -txouttotal-toolarge")
    if len(set(tx.prevouts)) != len(tx.prevouts):
        raise TxInvalid("tx-duplicate-inputs", "bad-txns-inputs-duplicate")
    if tx.n_in == 1 and tx.prevouts[0] == NULL_PREVOUT:
        raise TxInvalid("tx-invalid", "coinbase: a coinbase is only valid in a block")
    if NULL_PREVOUT in tx.prevouts:
        raise TxInvalid("tx-null-prevout", "bad-txns-prevout-null")


def check_standard(tx: Tx) -> None:
    """policy.cpp IsStandardTx "tx-size": a policy reject (scored 0), not misbehaviour."""
    if tx.weight > MAX_STANDARD_TX_WEIGHT:
        raise TxInvalid("tx-policy-reject", f"tx-size: weight {tx.weight} > {MAX_STANDARD_TX_WEIGHT}")

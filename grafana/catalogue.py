"""The metrics catalogue: every metric the node, the seeder, the controller, the attackers and the bitcoind members export today, and the
ones the next issues add (`planned_in` = the issue number), with type, unit, labels and meaning.

One source: docs/metrics.md is rendered from it (`python -m grafana.generate`), the dashboards look up
units here, and the tests compare it with live `/metrics` and with the panels' queries. Names follow
Prometheus practice: one prefix per component (`harness_node_`, `harness_seeder_`, `harness_controller_`,
`harness_attacker_`, `harness_bitcoind_`), base units (seconds, bytes, ratios 0..1), `_total` on counters, bounded labels.
Counters are listed under their sample name (with `_total`), histograms under their base name (the
series are `_bucket`, `_sum`, `_count`).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness_node.names import DANDELION_FLUFF_CAUSES

COMPONENTS = ("node", "seeder", "controller", "attacker", "bitcoind")
TYPES = ("counter", "gauge", "histogram")


@dataclass(frozen=True)
class Label:
    name: str
    values: tuple[str, ...] | None  # the complete value set when small and fixed; None: see `bound`
    bound: str  # what bounds the value set (prose for the docs)


@dataclass(frozen=True)
class Metric:
    name: str
    type: str
    unit: str
    labels: tuple[Label, ...]
    help: str
    planned_in: int | None = None  # the issue that adds it; None: exported today
    replaced_by: str | None = None  # exported today against the naming rules; the planned metric replacing it

    @property
    def component(self) -> str:
        return self.name.split("_")[1]

    @property
    def planned(self) -> bool:
        return self.planned_in is not None

    @property
    def family(self) -> str:
        """The family name a Prometheus text parser reports (counters without `_total`)."""
        return self.name.removesuffix("_total") if self.type == "counter" else self.name

    def series_names(self) -> tuple[str, ...]:
        """The sample names this metric appears under in a query or a scrape."""
        if self.type == "histogram":
            return tuple(self.name + s for s in ("_bucket", "_sum", "_count"))
        return (self.name,)


# --- labels ---------------------------------------------------------------------------------------
NODE = Label("node", None, "one per node of the plan (the node's name): grows with the network, never with traffic")
DIRECTION_IO = Label("direction", ("in", "out"), "fixed")
DIRECTION_PEER = Label("direction", ("inbound", "outbound"), "fixed")
COMMAND = Label("command", None, "the P2P commands the node knows (about 40) plus `other` for anything else")
ERROR_KIND = Label("kind", ("bad-magic", "oversized-message", "bad-checksum", "bad-command", "unknown-command",
                            "malformed-message", "unattributed-inbound", "block-not-stored"), "fixed")
REASON = Label("reason", None, "a key of the node's misbehaviour table (about 40)")
CONN_OUTCOME = Label("outcome", ("accepted", "refused-banned", "refused-full", "failed"), "fixed")
OUTBOUND_KIND = Label("kind", ("manual", "outbound-full-relay", "block-relay", "feeler", "addr-fetch"), "fixed")
TABLE = Label("table", ("new", "tried"), "fixed")
QTYPE = Label("qtype", None, "DNS query type names (A, AAAA, NS, SOA, ANY, ...: the types dnslib names)")
RCODE = Label("rcode", None, "DNS response code names (NOERROR, NXDOMAIN, REFUSED, ...)")
SEEDER_MODE = Label("mode", ("honest", "poison", "mixed", "stale", "empty", "nxdomain", "slow"), "fixed")
PROBE_RESULT = Label("result", ("ok", "failed"), "fixed")
SEEDER_STATE = Label("state", ("known", "new", "tracked", "good", "banned", "undialable"), "fixed")
PHASE = Label("phase", ("waiting", "timeline", "finishing", "done", "error"), "fixed")
ACTION = Label("action", None, "the timeline action kinds registered in harness/actions.py (about 15)")
ACTION_OUTCOME = Label("outcome", ("ok", "error"), "fixed")
ITEM_KIND = Label("kind", ("tx", "block"), "fixed")
COVERAGE = Label("coverage", ("0.5", "0.9", "1"), "fixed: the share of honest nodes reached")
CHECK = Label("check", None, "the checks of the scenario's `expect` list (a handful)")
RELAY_POLICY = Label("relay_policy", ("flood", "diffusion", "dandelion"), "fixed")
VICTIM = Label("victim", None, "one per victim node named by the scenario's attackers (at most the network size)")
ATTACKER = Label("attacker", None, "one per attacker entry of the scenario (its `name`), not per attacker node")
BEHAVIOUR = Label("behaviour", None, "the spam behaviours of harness_node.attack.behaviours (about 25), or an "
                  "attacker kind's name for kinds without a catalogue")
ESTIMATOR = Label("estimator", ("first-spy", "timing"), "fixed")
FLUFF_CAUSE = Label("cause", DANDELION_FLUFF_CAUSES, "fixed: harness_node.names.DANDELION_FLUFF_CAUSES")
DROP_CAUSE = Label("cause", ("loss", "partition"), "fixed")
WORKER = Label("worker", None, "one per worker process of the run (named after its first node; a few, plus one "
               "per node restarted alone)")
ATTACK_KIND = Label("kind", None, "the attacker kinds registered in harness_node.attack (a handful)")
ATTACK_COMMAND = Label("command", None, "the P2P commands the wire knows (about 40) plus `raw` for forged bytes")
ATTEMPT_OUTCOME = Label("outcome", ("connected", "failed"), "fixed")
OBSERVED_EVENT = Label("event", ("disconnected", "refused"), "fixed")
POLICY = Label("policy", ("ban", "discourage", "disconnect"), "fixed: the misbehaviour policies")
SPAM_RESULT = Label("result", ("as_expected", "unexpected"), "fixed")
ATTACKED = Label("attacked", ("true", "false"), "fixed")
RESOURCE = Label("resource", ("cpu", "bytes"), "fixed")
SENDER_POLICY = Label("relay_policy", ("flood", "diffusion", "dandelion", "all"),
                      "fixed: the senders' relay policy; `all` in a network that mixes policies")


def _m(name: str, type_: str, unit: str, labels: tuple[Label, ...], help_: str, planned_in: int | None = None,
       replaced_by: str | None = None) -> Metric:
    return Metric(name, type_, unit, labels, help_, planned_in, replaced_by)


# --- exported today -------------------------------------------------------------------------------
NODE_METRICS = (
    _m("harness_node_peers", "gauge", "peers", (NODE, DIRECTION_PEER), "Connected peers by direction."),
    _m("harness_node_messages_total", "counter", "messages", (NODE, DIRECTION_IO, COMMAND),
       "P2P messages by command and direction."),
    _m("harness_node_message_bytes_total", "counter", "bytes", (NODE, DIRECTION_IO, COMMAND),
       "P2P bytes (with the 24-byte header) by command and direction."),
    _m("harness_node_mempool_transactions", "gauge", "transactions", (NODE,), "Transactions in the mempool."),
    _m("harness_node_chain_height", "gauge", "blocks", (NODE,), "Height of the best chain."),
    _m("harness_node_transactions_received_total", "counter", "transactions", (NODE,),
       "New transactions accepted (from peers or injected)."),
    _m("harness_node_blocks_received_total", "counter", "blocks", (NODE,), "New blocks stored."),
    _m("harness_node_tx_propagation_delay_seconds", "histogram", "seconds", (NODE,),
       "Origin to this node's first sight of each synthetic transaction."),
    _m("harness_node_block_propagation_delay_seconds", "histogram", "seconds", (NODE,),
       "Origin to this node's first sight of each synthetic block."),
    _m("harness_node_inv_queue_wait_seconds", "histogram", "seconds", (NODE, DIRECTION_PEER),
       "Time a transaction waited in a peer's announcement queue (diffusion's Poisson timers), by the peer's direction."),
    _m("harness_node_protocol_errors_total", "counter", "errors", (NODE, ERROR_KIND), "Protocol (framing and parsing) errors by kind."),
    _m("harness_node_misbehaviour_events_total", "counter", "events", (NODE, REASON),
       "Misbehaviour events by reason (each scored by the node's misbehaviour table)."),
    _m("harness_node_bans_total", "counter", "bans", (NODE,), "Addresses banned."),
    _m("harness_node_banned_addresses", "gauge", "addresses", (NODE,), "Addresses currently banned or discouraged."),
    _m("harness_node_sandbox_refused_dials_total", "counter", "dials", (NODE,), "Dials refused by the sandbox allowlist."),
    _m("harness_node_housekeeping_errors_total", "counter", "errors", (NODE,),
       "Rounds of the node's periodic task (timeouts, pings, relay retries) that raised; logged, the task goes on."),
    _m("harness_node_connections_total", "counter", "connections", (NODE, DIRECTION_PEER, CONN_OUTCOME),
       "Connection attempts by direction and outcome."),
    _m("harness_node_outbound_peers", "gauge", "peers", (NODE, OUTBOUND_KIND), "Outbound connections by kind."),
    _m("harness_node_addrman_addresses", "gauge", "addresses", (NODE, TABLE), "Addresses in the address manager by table."),
    _m("harness_node_bans_by_reason_total", "counter", "bans", (NODE, REASON), "Bans by the misbehaviour reason that caused them."),
    _m("harness_node_discouragements_total", "counter", "addresses", (NODE,), "Addresses discouraged (0.20.1+ policies)."),
    _m("harness_node_peer_misbehaviour_score", "histogram", "points", (NODE,),
       "Current misbehaviour scores of the connected peers (100 = the threshold)."),
    _m("harness_node_evictions_total", "counter", "peers", (NODE,), "Inbound peers evicted to make room."),
    _m("harness_node_feeler_connections_total", "counter", "connections", (NODE,), "Feeler connections opened."),
    _m("harness_node_sandbox_skipped_addresses_total", "counter", "addresses", (NODE,),
       "Addresses never dialled because they are outside the sandbox allowlist."),
    _m("harness_node_inbound_refused_full_total", "counter", "connections", (NODE,),
       "Inbound connections refused: slots full and nobody evictable."),
    _m("harness_node_inbound_refused_descriptors_total", "counter", "connections", (NODE,),
       "Inbound connections refused because the host process's open-files budget is spent, though the "
       "node's own slots are free (Core's descriptor-bound connection limit, shared by a process's nodes)."),
    _m("harness_node_addr_received_total", "counter", "addresses", (NODE,), "Addresses received in addr/addrv2."),
    _m("harness_node_addr_rate_limited_total", "counter", "addresses", (NODE,), "Addresses dropped by the addr token bucket."),
    # One per worker process, exported by the worker's first node only (see PER_WORKER).
    _m("harness_node_event_loop_lag_seconds", "histogram", "seconds", (WORKER,),
       "How late the worker process's event loop ran a timer (per worker, not per node; exported by the "
       "worker's first node)."),
    _m("harness_node_dandelion_stem_transactions_total", "counter", "transactions", (NODE,),
       "Transactions this node relayed in the Dandelion++ stem phase (its own and others'); 0 under other policies."),
    _m("harness_node_dandelion_fluffs_total", "counter", "transactions", (NODE, FLUFF_CAUSE),
       "Stem transactions this node fluffed: by its coin (q), its embargo timer, for want of a stem relay, or because the stem came back to it (a cycle)."),
    _m("harness_node_processing_seconds_total", "counter", "seconds", (NODE, COMMAND),
       "Time the node spent handling received messages, by command: the handlers run synchronously on the "
       "host's one thread, so this is CPU time (plus any time the OS took the CPU away)."),
    # network chaos (docs/chaos.md)
    _m("harness_node_link_dropped_messages_total", "counter", "messages", (NODE, DROP_CAUSE),
       "Messages the link emulation dropped, by cause."),
    _m("harness_node_partitioned_peers", "gauge", "peers", (NODE,), "Peers this node cannot reach through an active partition."),
    _m("harness_node_bandwidth_wait_seconds_total", "counter", "seconds", (NODE, DIRECTION_IO),
       "Time messages waited for the node's upload/download token bucket."),
    _m("harness_node_clock_skew_seconds", "gauge", "seconds", (NODE,), "The node's configured clock offset."),
)
# Node metrics that only one node per worker process exports.
PER_WORKER = frozenset({"harness_node_event_loop_lag_seconds"})

SEEDER_METRICS = (
    _m("harness_seeder_queries_total", "counter", "queries", (QTYPE, RCODE), "DNS queries answered, by query type and response code."),
    _m("harness_seeder_records_served_total", "counter", "records", (SEEDER_MODE,),
       "A/AAAA records served, by the answer mode that chose them."),
    _m("harness_seeder_packets_dropped_total", "counter", "packets", (), "DNS packets dropped without an answer (no parsable header)."),
    _m("harness_seeder_mode_switches_total", "counter", "switches", (), "Runtime answer mode changes."),
    _m("harness_seeder_crawl_probes_total", "counter", "probes", (PROBE_RESULT,), "Crawler connection attempts, by result."),
    _m("harness_seeder_nodes", "gauge", "nodes", (SEEDER_STATE,), "Nodes in the seeder's database, by state."),
    _m("harness_seeder_mode", "gauge", "boolean", (SEEDER_MODE,), "The active answer mode (1 for the current one)."),
)

# The controller's derived figures, live (harness/controller/metrics.py). Counters and histograms
# observe each item, ban and action once, when the controller first sees it.
CONTROLLER_METRICS = (
    _m("harness_controller_phase", "gauge", "boolean", (PHASE,), "1 for the controller's current phase."),
    _m("harness_controller_timeline_actions_total", "counter", "actions", (ACTION, ACTION_OUTCOME),
       "Timeline actions executed, by kind and outcome, counted when each runs: the source of every "
       "dashboard's fault annotations."),
    _m("harness_controller_nodes_unreachable", "gauge", "nodes", (), "Nodes whose control API did not answer the last poll."),
    _m("harness_controller_items_injected", "gauge", "items", (ITEM_KIND,), "Transactions and blocks injected so far."),
    _m("harness_controller_item_coverage_seconds", "histogram", "seconds", (ITEM_KIND, COVERAGE, RELAY_POLICY),
       "For each probe item, the time from injection until the share `coverage` of the honest nodes (of the "
       "injecting node's relay policy) had it."),
    _m("harness_controller_last_item_coverage_seconds", "gauge", "seconds", (ITEM_KIND, COVERAGE),
       "The same times for the latest probe item that reached the coverage."),
    _m("harness_controller_coverage_ratio", "gauge", "ratio", (ITEM_KIND,),
       "Share of the honest nodes that have the latest probe item, at the last poll."),
    _m("harness_controller_bans_total", "counter", "bans", (REASON,), "Bans by honest nodes, by reason."),
    _m("harness_controller_time_to_ban_seconds", "histogram", "seconds", (REASON,),
       "From an attacker's first misbehaviour (as the banning node recorded it; a planned attacker without "
       "that record: from its start) to its ban or discouragement, by reason."),
    _m("harness_controller_honest_banned", "gauge", "bans", (), "Bans of honest nodes by honest nodes."),
    _m("harness_controller_victims_eclipsed", "gauge", "nodes", (), "Victims whose outbound peers are all attackers."),
    _m("harness_controller_victims_eclipsed_ratio", "gauge", "ratio", (),
       "Share of the watched victims whose outbound peers are all attackers, at the last poll (the eclipsed / "
       "not_eclipsed checks count those still eclipsed at the end)."),
    _m("harness_controller_victim_eclipsed_since_seconds", "gauge", "seconds", (VICTIM,),
       "For each victim eclipsed now: seconds from the run start to the beginning of its unbroken eclipsed stretch "
       "(the series disappears when the victim gets an honest outbound peer back)."),
    _m("harness_controller_victim_outbound_attacker_ratio", "gauge", "ratio", (VICTIM,),
       "Each victim's share of outbound peers that are attackers (1 = eclipsed), at the last poll."),
    _m("harness_controller_victim_addrman_attacker_ratio", "gauge", "ratio", (VICTIM, TABLE),
       "Each victim's share of occupied address-table slots holding a planned attacker's address, by table "
       "(the node's GET /addrman?networks=), at the last poll."),
    _m("harness_controller_event_loop_lag_seconds", "histogram", "seconds", (),
       "How late the controller's event loop ran a timer (its measurements are that uncertain)."),
    _m("harness_controller_check_passed", "gauge", "verdict", (CHECK,), "Each check's verdict: 1 pass, 0 fail, -1 error."),
    # network chaos (docs/chaos.md)
    _m("harness_controller_partitions_active", "gauge", "partitions", (), "Partitions in force now."),
    _m("harness_controller_nodes_down", "gauge", "nodes", (), "Nodes stopped by the timeline (kill, pause, churn) now."),
    # spam (issue 10): each behaviour's runs against the node's misbehaviour table, and the victims' cost
    _m("harness_controller_spam_runs", "gauge", "runs", (BEHAVIOUR, POLICY, SPAM_RESULT),
       "Spam behaviour runs (one attacker identity against one target), by whether the target reacted with the "
       "score and outcome its misbehaviour table gives."),
    _m("harness_controller_spam_expected_score", "gauge", "points", (BEHAVIOUR, POLICY),
       "Misbehaviour points the node's table charges for the behaviour's messages under the policy."),
    _m("harness_controller_spam_observed_score", "gauge", "points", (BEHAVIOUR, POLICY),
       "Highest misbehaviour points a target charged for the behaviour."),
    _m("harness_controller_spam_time_to_react_seconds", "gauge", "seconds", (BEHAVIOUR, POLICY),
       "Slowest time from a behaviour's first message to the target's ban, discouragement or disconnection."),
    _m("harness_controller_victim_processing_seconds", "gauge", "seconds", (ATTACKED,),
       "Mean CPU seconds honest nodes spent handling received messages: spam targets and the others."),
    _m("harness_controller_victim_received_bytes", "gauge", "bytes", (ATTACKED,),
       "Mean message bytes honest nodes received: spam targets and the others."),
    _m("harness_controller_victim_overhead_ratio", "gauge", "ratio", (RESOURCE,),
       "Spam targets' mean over the other honest nodes' mean, for processing CPU and received bytes (1 = no overhead)."),
    # malicious bootstrap (issue 10; docs/attackers.md): heal of poisoned victims once the seeder is honest
    _m("harness_controller_heal_seconds", "histogram", "seconds", (),
       "From the seeder turning honest to each poisoned victim's first honest outbound peer."),
    _m("harness_controller_victims_healed", "gauge", "nodes", (), "Poisoned victims that have an honest outbound peer again."),
    # surveillance (issue 11): the spy's source estimators, set on the run's full observation
    _m("harness_controller_spy_precision_ratio", "gauge", "ratio", (ESTIMATOR, SENDER_POLICY),
       "The spy's precision: mean over honest senders of the share of transactions it attributed to a node "
       "that are that node's."),
    _m("harness_controller_spy_recall_ratio", "gauge", "ratio", (ESTIMATOR, SENDER_POLICY),
       "The spy's recall: share of transactions whose true sender it named."),
    _m("harness_controller_spy_share_ratio", "gauge", "ratio", (),
       "p: the spy's identities over all honest nodes and spy identities (Dandelion++ predicts recall near p)."),
)

ATTACKER_METRICS = (
    _m("harness_attacker_connection_attempts_total", "counter", "connections", (ATTACKER, ATTACK_KIND, ATTEMPT_OUTCOME),
       "Connections attacker identities tried to open, by outcome."),
    _m("harness_attacker_connections", "gauge", "connections", (ATTACKER, ATTACK_KIND, DIRECTION_PEER),
       "Open connections of attacker identities."),
    _m("harness_attacker_messages_sent_total", "counter", "messages", (ATTACKER, ATTACK_KIND, BEHAVIOUR, ATTACK_COMMAND),
       "Messages attacker identities sent, by behaviour and command (`raw`: forged bytes)."),
    _m("harness_attacker_sent_bytes_total", "counter", "bytes", (ATTACKER, ATTACK_KIND), "Bytes attacker identities sent."),
    _m("harness_attacker_behaviours_run_total", "counter", "behaviours", (ATTACKER, ATTACK_KIND, BEHAVIOUR),
       "Behaviours attacker identities ran to the end against all their targets."),
    _m("harness_attacker_disconnections_total", "counter", "connections", (ATTACKER, ATTACK_KIND, OBSERVED_EVENT),
       "Attacker connections their victims closed: after the victim's version (disconnected) or before it "
       "(refused: a banned address, or a link that never got version)."),
    _m("harness_attacker_addresses_sent_total", "counter", "addresses", (ATTACKER,),
       "Addresses (own and trash) attacker identities pushed to victims in addr messages (eclipse floods and "
       "getaddr answers)."),
    # bootstrap (harness_node/attack/bootstrap.py)
    _m("harness_attacker_censored_transactions_total", "counter", "transactions", (ATTACKER,),
       "Victims' transactions accepted and never relayed."),
    _m("harness_attacker_block_delay_seconds", "histogram", "seconds", (ATTACKER,),
       "How long attackers held back a block they had announced (from the victim's getdata to the block)."),
    _m("harness_attacker_spy_announcements_total", "counter", "announcements", (ATTACKER,),
       "Transaction announcements the spy recorded (first per transaction and announcing node; 0 for other kinds)."),
)

# A real bitcoind member's figures, from its RPC (getpeerinfo, listbanned, getmempoolinfo,
# getblockcount) and its debug log, polled every 0.1 s by its supervisor and served at the member's
# control API `/metrics` (harness_node/bitcoind/conduct.py; docs/bitcoind.md).
BITCOIND_ACTION = Label("action", ("ban", "disconnect", "closed-by-peer"), "fixed")
BITCOIND_METRICS = (
    _m("harness_bitcoind_peers", "gauge", "peers", (NODE, DIRECTION_PEER), "Connected peers by direction (getpeerinfo)."),
    _m("harness_bitcoind_chain_height", "gauge", "blocks", (NODE,), "Height of the best chain (getblockcount)."),
    _m("harness_bitcoind_mempool_transactions", "gauge", "transactions", (NODE,),
       "Transactions in the mempool (getmempoolinfo size)."),
    _m("harness_bitcoind_mempool_bytes", "gauge", "bytes", (NODE,), "Mempool size in bytes (getmempoolinfo bytes)."),
    _m("harness_bitcoind_banned_addresses", "gauge", "addresses", (NODE,), "Addresses in the ban list (listbanned)."),
    _m("harness_bitcoind_max_banscore", "gauge", "points", (NODE,),
       "Highest ban score among connected peers (getpeerinfo banscore, or the debug log's Misbehaving lines)."),
    _m("harness_bitcoind_misbehaving_peers_left_total", "counter", "peers", (NODE, BITCOIND_ACTION),
       "Peers with a ban score above 0 that left getpeerinfo: banned (in listbanned), disconnected by bitcoind, "
       "or closed by the peer (its debug log)."),
)

# --- planned --------------------------------------------------------------------------------------
PLANNED_METRICS = (
)

TODAY: tuple[Metric, ...] = NODE_METRICS + SEEDER_METRICS + CONTROLLER_METRICS + ATTACKER_METRICS + BITCOIND_METRICS
ALL: tuple[Metric, ...] = TODAY + PLANNED_METRICS
BY_NAME: dict[str, Metric] = {m.name: m for m in ALL}


def metric(name: str) -> Metric:
    """Look a metric up by name (KeyError names it: a dashboard may only chart catalogued metrics)."""
    return BY_NAME[name]


def by_series_name() -> dict[str, Metric]:
    """Every sample name a query may use (histograms' _bucket/_sum/_count) -> its metric."""
    return {s: m for m in ALL for s in m.series_names()}

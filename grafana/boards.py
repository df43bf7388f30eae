"""The seven dashboards: what each panel asks Prometheus, and what to look for during an attack.

Every metric named here must be in the catalogue (spec.metrics_in raises otherwise); panels over
planned metrics are listed, with their issue, in tests/observability/test_dashboards_live.py.
"""

from __future__ import annotations

from grafana.spec import RATE, Board, Query, heatmap, stat, ts

Q = Query


def _rate(metric: str, by: str = "") -> str:
    grouping = f"sum by ({by}) " if by else "sum "
    return f"{grouping}(rate({metric}[{RATE}]))"


def _quantile(q: float, histogram: str, by: str = "", rate: bool = True) -> str:
    """A quantile of a histogram over all nodes: over the rate window, or since the start."""
    le = f"le, {by}" if by else "le"
    inner = f"rate({histogram}_bucket[{RATE}])" if rate else f"{histogram}_bucket"
    return f"histogram_quantile({q}, sum by ({le}) ({inner}))"


PEERS_MIN_MAX = ts("Peers per node (min / max)", "short",
                   "The least and most connected node. During an eclipse or a connection flood the minimum drops "
                   "(victims lose honest peers) or the maximum pins at the slot limit (attackers hold inbound slots).",
                   Q("min(sum by (node) (harness_node_peers))", "min"), Q("max(sum by (node) (harness_node_peers))", "max"))
CONNECTIONS = ts("Connection attempts by outcome", "cps",
                 "Connections per second by direction and outcome. Refusals (banned, full) rise under spam and "
                 "connection floods; failed outbound dials rise under partitions, loss and churn.",
                 Q(_rate("harness_node_connections_total", "direction, outcome"), "{{direction}} {{outcome}}"))
PROTOCOL_ERRORS = ts("Protocol errors by kind", "short",
                     "Framing and parsing errors per second. Zero in an honest network: any rise is a peer sending "
                     "garbage, bad checksums, oversized or unknown messages (spam behaviours of issue 10). "
                     "\"housekeeping\" is the node's own periodic task failing (a bug: see the node's log).",
                     Q(_rate("harness_node_protocol_errors_total", "kind"), "{{kind}}"),
                     Q(_rate("harness_node_housekeeping_errors_total"), "housekeeping"))
PROPAGATION = ts("Time to 50 / 90 / 100 % of honest nodes", "s",
                 "Median over the probe items so far of the time each took to reach half, 90 % and all honest nodes. "
                 "Censoring or block-delaying attackers, partitions and slow links push p90/p100 up; a p100 that "
                 "never appears means some node never got the item.",
                 Q(_quantile(0.5, "harness_controller_item_coverage_seconds", "kind, coverage", rate=False),
                   "{{kind}} {{coverage}}"))
INV_WAIT = ts("Announcement queue wait (diffusion), p50 / p90", "s",
              "How long transactions wait in per-peer announcement queues before being announced, since the start, "
              "by the peer's direction. Diffusion's Poisson timers set it (outbound 2 s, inbound 5 s, times "
              "time_scale); it is the delay a relay policy pays for privacy.",
              Q(_quantile(0.5, "harness_node_inv_queue_wait_seconds", "direction", rate=False), "p50 {{direction}}"),
              Q(_quantile(0.9, "harness_node_inv_queue_wait_seconds", "direction", rate=False), "p90 {{direction}}"))
ECLIPSED = stat("Victims eclipsed", "short",
                "Victims whose outbound peers are all attackers at the last poll. Anything above 0 is a successful "
                "eclipse (or a poisoned bootstrap that has not healed yet).",
                Q("harness_controller_victims_eclipsed", "eclipsed"))

OVERVIEW = Board("harness-overview", "Harness: overview",
                 "Nodes, peers, traffic and the controller's verdicts; the timeline's faults as annotations.", (
    stat("Nodes up", "short", "Nodes whose /metrics Prometheus scraped last. Drops when the timeline stops, pauses "
         "or restarts nodes (see the annotations); a drop with no annotation is a crash.",
         Q("count(harness_node_chain_height)", "nodes")),
    stat("Controller phase", "short", "waiting → timeline → finishing → done (or error). Figures are final at done.",
         Q("harness_controller_phase == 1", "{{phase}}")),
    stat("Checks", "short", "Each expectation of the scenario: 1 pass, 0 fail, -1 error (set when the run is done). "
         "An attack that should fail (eclipse with defences on) shows as checks staying at 1.",
         Q("harness_controller_check_passed", "{{check}}")),
    ts("Peers by direction", "short", "All connections in the network by direction. Attackers filling inbound slots "
       "raise inbound without raising outbound; a partition or a ban wave lowers both.",
       Q("sum by (direction) (harness_node_peers)", "{{direction}}")),
    PEERS_MIN_MAX,
    ts("Messages per second by command and direction", "short",
       "Every P2P message per second, by command. Spam shows as one command (inv, addr, ping, headers, other) "
       "dominating `in`; an addr flood as addr in ≫ addr out.",
       Q(_rate("harness_node_messages_total", "command, direction"), "{{direction}} {{command}}")),
    ts("Bytes per second by command and direction", "Bps",
       "Bandwidth by command. Oversized messages and floods show as byte spikes on the victim's `in` side; big "
       "blocks as block bytes.", Q(_rate("harness_node_message_bytes_total", "command, direction"),
                                  "{{direction}} {{command}}")),
    ts("Chain height and mempool", "short",
       "Highest and lowest chain tip and the mean mempool size. A gap between max and min height that does not "
       "close is a node cut off (partition, eclipse, delayed blocks).",
       Q("max(harness_node_chain_height)", "max height"), Q("min(harness_node_chain_height)", "min height"),
       Q("avg(harness_node_mempool_transactions)", "mean mempool")),
    CONNECTIONS,
    PROTOCOL_ERRORS,
    ts("Nodes unreachable", "short", "Nodes whose control API did not answer the controller's last poll: stopped "
       "or paused by the timeline, or overloaded.", Q("harness_controller_nodes_unreachable", "unreachable")),
))

PROPAGATION_BOARD = Board("harness-propagation", "Harness: propagation",
                          "How fast transactions and blocks reach the honest nodes, and how relay policies compare.", (
    PROPAGATION,
    ts("Coverage of the latest probe item", "percentunit",
       "Share of honest nodes that have the latest injected transaction / block. Should climb to 100 % within "
       "seconds; a plateau below 100 % is censorship, a partition or an eclipsed node.",
       Q("harness_controller_coverage_ratio", "{{kind}}")),
    ts("Latest probe item: time to 50 / 90 / 100 %", "s",
       "The same times for the most recent item, so a change caused by a fault shows at once.",
       Q("harness_controller_last_item_coverage_seconds", "{{kind}} {{coverage}}")),
    heatmap("Transaction delay (origin → first sight), all nodes", "s",
            "Each cell counts first sightings in a delay bucket. Under an attack the mass moves up (delays) or "
            "a second band appears (nodes reached only by slow paths).",
            f"sum by (le) (increase(harness_node_tx_propagation_delay_seconds_bucket[{RATE}]))"),
    heatmap("Block delay (origin → first sight), all nodes", "s",
            "As for transactions; block-delaying attackers (announce, answer getdata only at the timeout) show as a "
            "band near the getdata timeout.",
            f"sum by (le) (increase(harness_node_block_propagation_delay_seconds_bucket[{RATE}]))"),
    ts("Node-side delay percentiles since the start", "s",
       "p50 / p90 of every node's first-sight delay since the run started (transactions and blocks).",
       Q(_quantile(0.5, "harness_node_tx_propagation_delay_seconds", rate=False), "tx p50"),
       Q(_quantile(0.9, "harness_node_tx_propagation_delay_seconds", rate=False), "tx p90"),
       Q(_quantile(0.5, "harness_node_block_propagation_delay_seconds", rate=False), "block p50"),
       Q(_quantile(0.9, "harness_node_block_propagation_delay_seconds", rate=False), "block p90")),
    ts("Policy comparison: median time to coverage by relay policy", "s",
       "For each relay policy (flood, diffusion, dandelion) the median time to 50/90/100 % coverage: the "
       "latency side of the privacy trade-off (see the privacy dashboard).",
       Q(_quantile(0.5, "harness_controller_item_coverage_seconds", "relay_policy, coverage", rate=False),
         "{{relay_policy}} {{coverage}}")),
    INV_WAIT,
    ts("New transactions and blocks per second", "short", "Accepted items per second over all nodes; should follow "
       "the workload's rate times the number of nodes.",
       Q(_rate("harness_node_transactions_received_total"), "tx"), Q(_rate("harness_node_blocks_received_total"), "blocks")),
    stat("Items injected", "short", "Probe transactions and blocks injected so far by the workload.",
         Q("harness_controller_items_injected", "{{kind}}")),
))

SPAM_BANS = Board("harness-spam-bans", "Harness: spam and bans",
                  "Misbehaviour scoring, bans and discouragement, and what spam costs the victims.", (
    ts("Misbehaviour events by reason", "short",
       "Scored events per window, by the node's misbehaviour reason. Each spam behaviour should appear under its "
       "own reason, at the rate the attacker sends it.",
       Q(f"sum by (reason) (increase(harness_node_misbehaviour_events_total[{RATE}]))", "{{reason}}")),
    ts("Bans by reason", "short", "Bans per window by the reason that crossed the threshold. Under the `ban` policy "
       "each spammer should appear once; under `disconnect` look at discouragements instead.",
       Q(f"sum by (reason) (increase(harness_node_bans_by_reason_total[{RATE}]))", "{{reason}}")),
    stat("Bans so far by reason (controller)", "short", "Bans by honest nodes since the start, as the controller "
         "polled them from the nodes' ban lists.", Q("sum by (reason) (harness_controller_bans_total)", "{{reason}}")),
    stat("Honest nodes banned", "short", "Must stay 0: an honest node banned by another honest node is a false "
         "positive of the misbehaviour rules.", Q("harness_controller_honest_banned", "honest banned")),
    ts("Banned addresses, bans and discouragements", "short", "Addresses on ban lists now, and discouragements so far "
       "(0.20.1+ policies). The ban list should grow by the number of spammers and then stay flat.",
       Q("sum(harness_node_banned_addresses)", "banned now"), Q("sum(harness_node_bans_total)", "bans so far"),
       Q("sum(harness_node_discouragements_total)", "discouraged")),
    heatmap("Misbehaviour scores of connected peers", "short",
            "How many connected peers sit at each score (100 = the threshold). Spammers climb the buckets and "
            "vanish at 100; honest peers stay at 0.", "sum by (le) (harness_node_peer_misbehaviour_score_bucket)"),
    ts("Time to ban by reason, p50 / p90", "s", "From a spammer's first misbehaviour to its ban or discouragement, "
       "over the bans since the start (bans are rare: a rate window would mostly be empty). Compare with the "
       "scenario's bound; a reason that never bans shows no line.",
       Q(_quantile(0.5, "harness_controller_time_to_ban_seconds", "reason", rate=False), "p50 {{reason}}"),
       Q(_quantile(0.9, "harness_controller_time_to_ban_seconds", "reason", rate=False), "p90 {{reason}}")),
    ts("Victim CPU: message handling time by command", "percentunit",
       "Share of a CPU the nodes spend handling each command (top 10). Spam that is cheap to send and expensive "
       "to check (invalid blocks, oversized messages) shows here.",
       Q(f"topk(10, {_rate('harness_node_processing_seconds_total', 'command')})", "{{command}}")),
    ts("Attack messages sent by behaviour", "short", "What the spam attackers send per second, to set against the "
       "victims' misbehaviour events above.",
       Q(_rate("harness_attacker_messages_sent_total", "attacker, behaviour"), "{{attacker}} {{behaviour}}")),
    stat("Spam runs as the misbehaviour table says", "short",
         "Behaviour runs (one identity against one target) whose target charged the table's score and reacted as "
         "the table says, and those that did not. Any `unexpected` is a rule the node does not apply (see the "
         "report's spam section for expected next to observed).",
         Q("sum by (result) (harness_controller_spam_runs)", "{{result}}")),
    ts("Expected and observed score by behaviour", "short",
       "For each behaviour and policy, the points the node's table charges and the most a target charged. The two "
       "lines of a behaviour should coincide; an observed line below the expected one is a rule not charged.",
       Q("harness_controller_spam_expected_score", "expected {{behaviour}} ({{policy}})"),
       Q("harness_controller_spam_observed_score", "observed {{behaviour}} ({{policy}})")),
    ts("Time to react by behaviour", "s",
       "Slowest time from a behaviour's first message to the target's ban, discouragement or disconnection. Under "
       "`disconnect` (28.0) it is one message; under `ban` it is the time to send 100 points' worth.",
       Q("harness_controller_spam_time_to_react_seconds", "{{behaviour}} ({{policy}})")),
    ts("Victim overhead: spam targets over bystanders", "short",
       "Mean processing CPU and received bytes of the spam targets divided by those of the honest nodes nobody "
       "attacks (1 = no overhead). Oversized and invalid messages that are cheap to send and costly to check "
       "push the CPU ratio up.",
       Q("harness_controller_victim_overhead_ratio", "{{resource}}")),
    PROTOCOL_ERRORS,
    CONNECTIONS,
))

ECLIPSE = Board("harness-eclipse", "Harness: eclipse",
                "Victims' outbound peers and address tables, and the defences that keep attackers out.", (
    ECLIPSED,
    ts("Highest attacker share of a victim's outbound peers", "percentunit",
       "The worst-off victim. 100 % = eclipsed. With today's countermeasures it should stay well below; with "
       "the legacy profile it climbs after the victim restarts.",
       Q("max(harness_controller_victim_outbound_attacker_ratio)", "max share")),
    ts("Attacker share of each victim's outbound peers", "percentunit",
       "One line per victim: the share of its outbound peers that are attackers over time.",
       Q("harness_controller_victim_outbound_attacker_ratio", "{{victim}}")),
    ts("Attacker share of each victim's address tables", "percentunit",
       "Share of new / tried entries that are attacker addresses. Heilman's attack fills `new` with trash and "
       "`tried` with attackers before forcing a restart.",
       Q("harness_controller_victim_addrman_attacker_ratio", "{{victim}} {{table}}")),
    ts("Address tables (new / tried), all nodes", "short", "Entries in the address managers. An addr flood swells "
       "`new`; the tried table only grows when outbound connections succeed.",
       Q("sum by (table) (harness_node_addrman_addresses)", "{{table}}")),
    ts("Outbound connections by kind", "short", "Full-relay, block-relay-only (anchors), feelers and others. "
       "Feelers and anchors are countermeasures: with them off (legacy profile) those lines stay at 0.",
       Q("sum by (kind) (harness_node_outbound_peers)", "{{kind}}")),
    ts("Evictions, feelers and full-slot refusals", "short", "Per second over all nodes. Attackers keeping inbound "
       "slots full cause evictions and refusals; feelers test addresses before they enter tried.",
       Q(_rate("harness_node_evictions_total"), "evictions"), Q(_rate("harness_node_feeler_connections_total"), "feelers"),
       Q(_rate("harness_node_inbound_refused_full_total"), "refused full")),
    ts("Addresses received and rate-limited", "short", "addr entries per second received and dropped by the "
       "token bucket (0.21+). An addr flood shows as a rate-limited line close to the received one.",
       Q(_rate("harness_node_addr_received_total"), "received"), Q(_rate("harness_node_addr_rate_limited_total"), "rate-limited")),
    ts("Attacker connections and addresses pushed", "short", "Open attacker connections and addresses they push "
       "per second: the attacker's effort, to set against the victims' shares above.",
       Q("sum by (attacker, direction) (harness_attacker_connections)", "{{attacker}} {{direction}}"),
       Q(_rate("harness_attacker_addresses_sent_total", "attacker"), "{{attacker}} addresses/s")),
))

BOOTSTRAP = Board("harness-bootstrap", "Harness: bootstrap",
                  "The DNS seeder's answers by mode, and whether poisoned victims heal.", (
    stat("Seeder answer mode", "short", "The seeder's current mode. A switch to poison / rogue is the start of a "
         "malicious bootstrap (see the annotations).", Q("harness_seeder_mode == 1", "{{mode}}")),
    ts("Records served by mode", "short", "A/AAAA records per second by the mode that chose them: poisoned answers "
       "show under `poison` / `mixed`.", Q(_rate("harness_seeder_records_served_total", "mode"), "{{mode}}")),
    ts("DNS queries by type and response code", "short", "Queries per second. Nodes bootstrapping (restarts with "
       "wiped data dirs) cause bursts; NXDOMAIN / REFUSED show misbehaving modes.",
       Q(_rate("harness_seeder_queries_total", "qtype, rcode"), "{{qtype}} {{rcode}}")),
    ts("Seeder database by state", "short", "What the crawler knows: good nodes should track the honest network's "
       "size; a rogue seeder starts empty.", Q("harness_seeder_nodes", "{{state}}")),
    ts("Crawler probes by result", "short", "Probe connections per second; failures rise when nodes are stopped.",
       Q(_rate("harness_seeder_crawl_probes_total", "result"), "{{result}}")),
    ts("Mode switches and dropped packets", "short", "Mode changes so far and DNS packets without a parsable header.",
       Q("harness_seeder_mode_switches_total", "mode switches"), Q("harness_seeder_packets_dropped_total", "dropped")),
    ECLIPSED,
    ts("Victims healed and heal time", "s", "Poisoned victims back with an honest outbound peer, and the p50/p90 "
       "time from the seeder turning honest to that first honest peer.",
       Q("harness_controller_victims_healed", "healed"),
       Q(_quantile(0.5, "harness_controller_heal_seconds"), "heal p50"),
       Q(_quantile(0.9, "harness_controller_heal_seconds"), "heal p90")),
    ts("Censored transactions and delayed blocks", "short", "What attackers did once connected: victims' "
       "transactions accepted and never relayed, and the p90 time they held announced blocks back.",
       Q(_rate("harness_attacker_censored_transactions_total", "attacker"), "{{attacker}} censored/s"),
       Q(_quantile(0.9, "harness_attacker_block_delay_seconds", "attacker"), "{{attacker}} block delay p90")),
    ts("Sandbox: dials refused and addresses skipped", "short", "Dials outside the allowlist the sandbox refused "
       "and addresses never dialled. A poisoned answer naming outside addresses shows here, not on the Internet.",
       Q(_rate("harness_node_sandbox_refused_dials_total"), "refused dials"),
       Q(_rate("harness_node_sandbox_skipped_addresses_total"), "skipped addresses")),
))

PRIVACY = Board("harness-privacy", "Harness: privacy",
                "What a spy supernode learns about transaction origins under each relay policy.", (
    ts("Spy precision by estimator and relay policy", "percentunit",
       "Share of the spy's source guesses that are right. Expect flood ≥ diffusion ≫ dandelion.",
       Q("harness_controller_spy_precision_ratio", "{{estimator}} {{relay_policy}}")),
    ts("Spy recall by estimator and relay policy", "percentunit",
       "Share of transactions whose source the spy named. Under dandelion it should sit near the spy's share of "
       "nodes.", Q("harness_controller_spy_recall_ratio", "{{estimator}} {{relay_policy}}")),
    ts("Announcements the spy recorded", "short", "The spy's view: announcements per second it timed.",
       Q(_rate("harness_attacker_spy_announcements_total", "attacker"), "{{attacker}}")),
    ts("Dandelion stem and fluff", "short", "Stem relays and fluffs per second; fluffs ≈ q × stems when no stem "
       "relay drops transactions, more when embargo timers fire.",
       Q(_rate("harness_node_dandelion_stem_transactions_total"), "stem"),
       Q(_rate("harness_node_dandelion_fluffs_total", "cause"), "fluff: {{cause}}")),
    PROPAGATION,
    INV_WAIT,
))

CHAOS = Board("harness-chaos", "Harness: chaos",
              "Faults in the network: stopped nodes, partitions, loss, bandwidth, skew, and whether timing is trustworthy.", (
    ts("Timeline actions by kind", "short", "Actions executed per window (the same counter draws the annotations).",
       Q("sum by (action) (increase(harness_controller_timeline_actions_total[1m]))", "{{action}}")),
    stat("Timeline actions executed so far", "short", "Actions by kind and outcome since the start; an `error` "
         "outcome is a fault that did not happen.",
         Q("sum by (action, outcome) (harness_controller_timeline_actions_total)", "{{action}} {{outcome}}")),
    ts("Nodes unreachable and down", "short", "Nodes the controller could not reach, and nodes the timeline has "
       "stopped; a difference is a node that died on its own.",
       Q("harness_controller_nodes_unreachable", "unreachable"), Q("harness_controller_nodes_down", "down")),
    ts("Messages dropped by the link emulation", "short", "Drops per second by cause (random loss, partition).",
       Q(_rate("harness_node_link_dropped_messages_total", "cause"), "{{cause}}")),
    ts("Partitions", "short", "Partitions in force and peers cut off by them; both return to 0 at the heal.",
       Q("harness_controller_partitions_active", "partitions"), Q("sum(harness_node_partitioned_peers)", "cut-off peers")),
    ts("Bandwidth: time waiting for the token bucket", "percentunit", "Share of time messages wait for upload / "
       "download capacity; slow nodes under big blocks sit near 100 %.",
       Q(_rate("harness_node_bandwidth_wait_seconds_total", "direction"), "{{direction}}")),
    ts("Clock skew", "s", "The 20 largest configured clock offsets (absolute); a skewed node sees ban expiries and addr times move.",
       Q("topk(20, abs(harness_node_clock_skew_seconds))", "{{node}}")),
    ts("Event-loop lag, p99", "s", "How late timers fire in the workers and the controller. Propagation figures "
       "are only trustworthy while this stays below 10 % of the smallest configured delay.",
       Q(_quantile(0.99, "harness_node_event_loop_lag_seconds", "worker"), "{{worker}}"),
       Q(_quantile(0.99, "harness_controller_event_loop_lag_seconds"), "controller")),
    PEERS_MIN_MAX,
    CONNECTIONS,
))

BOARDS: tuple[Board, ...] = (OVERVIEW, PROPAGATION_BOARD, SPAM_BANS, ECLIPSE, BOOTSTRAP, PRIVACY, CHAOS)

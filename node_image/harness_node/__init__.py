"""The harness's lightweight Bitcoin P2P node, in layers; a module imports only from its own layer
or lower ones, and nothing below ``node.py`` imports ``node.py`` (not even under TYPE_CHECKING).

Layers, lowest first (``LAYERS`` below is the same list, read by ``tests/test_layers.py``):

0. leaves: ``names`` (every vocabulary), ``atomicfile`` (the one atomic write), ``dictconfig``, ``timing``, ``tokenfile``,
   ``transportfile`` (the Kubernetes transport table: pod names resolved into endpoints/inbound_hosts),
   ``controlauth`` (the control APIs' token rule), ``procutil``, ``wheel`` (the host's one housekeeping timer),
   ``memo`` (the bounded memo of the address path)
1. ``wire/``: frame codec, message classes, synthetic blocks and transactions
2. ``net/``: connection, link emulation, sandbox, per-connection counters (``stats``), the node's
   ``Peer`` and the ``Protocol`` interfaces it reports to (``net.events``), and ``client`` — the
   reusable client peer (handshake, keep-alive, frame loop) used by the seeder, tests and attackers
3. ``chain/``: block tree and mempool
4. ``addr/``: netgroups, addrman and its store, addr relay rules, addr service, bootstrap
5. ``peering/``: misbehaviour, ban list, eviction, peer config, connection manager (uses addrman), and
   ``discipline`` (the node's misbehaviour hook, charge log and ban actions, a mixin Node inherits)
6. ``relay/``: inv/tx/block relay with its per-peer state keyed by peer id, Dandelion++, and the
   command -> handler table (``dispatch``)
7. ``config``: ``NodeConfig``
8. ``attack/``: the attacker process (kinds registry, identities dialling with ``net.client``,
   control API, ``harness_attacker_*`` metrics); below ``node``, which it never imports
9. ``node``: the only composition root: builds the services and registers the message handlers
   (their table: ``relay.dispatch``)
10. ``api/``: control API and Prometheus metrics (they read a built node)
11. ``host``: runs several nodes in one process
12. ``seeder/``: the DNS seeder, built on ``wire``, ``net.client`` and ``atomicfile`` only
13. ``bitcoind/``: a real bitcoind as a member: launched, supervised, observed through its RPC
14. ``cli``
"""

__version__ = "0.1.0"
USER_AGENT = f"/harness-node:{__version__}/"

LAYERS: tuple[tuple[str, ...], ...] = (
    ("names", "atomicfile", "dictconfig", "timing", "tokenfile", "transportfile", "controlauth", "procutil", "wheel",
     "memo"),
    ("wire",),
    ("net",),
    ("chain",),
    ("addr",),
    ("peering",),
    ("relay",),
    ("config",),
    ("attack",),
    ("node",),
    ("api",),
    ("host",),
    ("seeder",),
    ("bitcoind",),
    ("cli",),
)

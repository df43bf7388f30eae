"""Who sent this transaction? The spy's source estimators and how well they do (issue 11).

Pure functions over the spy's view and the ground truth; no I/O.

- The spy's **view** of one transaction: for each peer (a node name) the time that peer first
  announced it to the spy (an ``inv``, or a stem ``dandeliontx`` handed to one of its identities).
- **first-spy** (Fanti & Viswanath 2017): the first peer to announce is the source.
- **timing**: a least-squares reading of all the early announcements over the spy's view of the
  graph. Under diffusion a node k hops from the source announces about k mean hop delays after
  it, so for each candidate source v we fit ``t_u ≈ a + b·d(v, u)`` (b ≥ 0) over the first
  ``TIMING_ANNOUNCERS`` announcers u and pick the candidate with the smallest squared residual (a
  Gaussian maximum-likelihood estimate of the source on the graph, with the hop delay as a nuisance
  parameter). It uses what the first announcer ignores: where the next ones sit.
- **Precision and recall** (Fanti et al. 2018, "Dandelion++", §2): for each honest node v,
  recall_v = share of v's transactions the estimator attributed to v, precision_v = share of the
  transactions attributed to v that are v's (0 when the estimator never names v: nothing about v
  leaked). Overall recall is the share of all transactions attributed correctly; overall precision
  is the mean of precision_v over the honest nodes that sent something (the paper's average
  precision); ``precision_micro`` (right guesses / guesses) is reported beside it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from harness.analysis.figures.propagation import KindPropagation, item_propagation, kind_propagation
from harness.analysis.model import ItemObservation, PrivacyScore

ESTIMATORS: tuple[str, ...] = ("first-spy", "timing")  # grafana/catalogue.py ESTIMATOR label
TIMING_ANNOUNCERS = 20  # the early announcements carry the position; later ones are mostly noise

View = Mapping[str, float]  # announcer (node name) -> first announcement time (s)


def first_spy(view: View) -> str | None:
    """The earliest announcer (ties: the smallest name, so the result is deterministic)."""
    if not view:
        return None
    return min(view.items(), key=lambda kv: (kv[1], kv[0]))[0]


def hop_distances(edges: Iterable[tuple[str, str]], nodes: Iterable[str]) -> dict[str, dict[str, int]]:
    """All-pairs hop counts over an undirected graph (a BFS per node); unreachable pairs are absent."""
    adj: dict[str, set[str]] = {n: set() for n in nodes}
    for a, b in edges:
        if a != b:
            adj.setdefault(a, set()).add(b)
            adj.setdefault(b, set()).add(a)
    out: dict[str, dict[str, int]] = {}
    for src in adj:
        dist, todo = {src: 0}, deque([src])
        while todo:
            u = todo.popleft()
            for w in adj[u]:
                if w not in dist:
                    dist[w] = dist[u] + 1
                    todo.append(w)
        out[src] = dist
    return out


def _fit_sse(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Squared residual of the least-squares line y = a + b·x with b >= 0."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else 0.0
    b = max(0.0, b)
    a = my - b * mx
    return sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))


def timing_estimate(view: View, distances: Mapping[str, Mapping[str, int]], candidates: Iterable[str],
                    announcers: int = TIMING_ANNOUNCERS) -> str | None:
    """The candidate whose hop distances best explain the first `announcers` announcement times.

    A candidate that cannot reach an announcer gets that announcer at distance len(distances) (far).
    Ties go to the earlier announcer, then the smaller name."""
    if not view:
        return None
    early = sorted(view.items(), key=lambda kv: (kv[1], kv[0]))[:announcers]
    if len(early) < 3:
        return first_spy(view)  # two points always fit a line: timing says nothing more
    t0 = early[0][1]
    ys = [t - t0 for _, t in early]
    far = len(distances) + 1
    best: tuple[float, float, str] | None = None
    for v in candidates:
        dv = distances.get(v, {})
        xs = [float(dv.get(u, far)) for u, _ in early]
        key = (_fit_sse(xs, ys), view.get(v, float("inf")), v)
        if best is None or key < best:
            best = key
    return best[2] if best is not None else first_spy(view)


@dataclass(frozen=True)
class NodeScore:
    sent: int  # transactions this node injected
    named: int  # transactions the estimator attributed to it
    correct: int  # ... of which it really sent

    @property
    def recall(self) -> float | None:
        return self.correct / self.sent if self.sent else None

    @property
    def precision(self) -> float:
        return self.correct / self.named if self.named else 0.0


@dataclass(frozen=True)
class Score:
    estimator: str
    transactions: int
    guessed: int  # transactions the spy saw at all (it names a source for each of those)
    correct: int
    per_node: Mapping[str, NodeScore] = field(default_factory=dict)

    @property
    def recall(self) -> float:
        return self.correct / self.transactions if self.transactions else 0.0

    @property
    def precision(self) -> float:
        senders = [s for s in self.per_node.values() if s.sent]
        return sum(s.precision for s in senders) / len(senders) if senders else 0.0

    @property
    def precision_micro(self) -> float:
        return self.correct / self.guessed if self.guessed else 0.0

    def to_dict(self) -> dict[str, object]:
        return {"estimator": self.estimator, "transactions": self.transactions, "guessed": self.guessed,
                "correct": self.correct, "precision": self.precision, "recall": self.recall,
                "precision_micro": self.precision_micro,
                "per_node": {n: {"sent": s.sent, "named": s.named, "correct": s.correct, "precision": s.precision,
                                 "recall": s.recall} for n, s in sorted(self.per_node.items())}}


def score(estimator: str, guesses: Mapping[str, str | None], truth: Mapping[str, str],
          honest: Iterable[str]) -> Score:
    """Precision and recall of `guesses` (item -> named source or None) against `truth` (item -> source),
    per honest node and overall. Only items in `truth` count."""
    sent: dict[str, int] = {n: 0 for n in honest}
    named: dict[str, int] = dict.fromkeys(sent, 0)
    correct: dict[str, int] = dict.fromkeys(sent, 0)
    guessed = right = 0
    for item, source in truth.items():
        sent[source] = sent.get(source, 0) + 1
        guess = guesses.get(item)
        if guess is None:
            continue
        guessed += 1
        named[guess] = named.get(guess, 0) + 1
        if guess == source:
            right += 1
            correct[source] = correct.get(source, 0) + 1
    nodes = set(sent) | set(named)
    per_node = {n: NodeScore(sent.get(n, 0), named.get(n, 0), correct.get(n, 0)) for n in nodes}
    return Score(estimator, len(truth), guessed, right, per_node)


def estimate(views: Mapping[str, View], honest: Sequence[str],
             edges: Iterable[tuple[str, str]] = ()) -> dict[str, dict[str, str | None]]:
    """Every estimator's guess (item -> named source) over the spy's `views`; the candidates are
    the honest nodes, `edges` the honest graph as the spy sees it (for the timing estimator)."""
    distances = hop_distances(edges, honest)
    return {
        "first-spy": {item: first_spy(view) for item, view in views.items()},
        "timing": {item: timing_estimate(view, distances, honest) for item, view in views.items()},
    }


def evaluate(views: Mapping[str, View], truth: Mapping[str, str], honest: Sequence[str],
             edges: Iterable[tuple[str, str]] = ()) -> dict[str, Score]:
    """Run every estimator over the spy's `views` (item -> view) and score it against `truth`."""
    guesses = estimate(views, honest, edges)
    return {name: score(name, guesses[name], truth, honest) for name in ESTIMATORS}


ALL_POLICIES = "all"  # PrivacyScore.relay_policy over every honest node


def merge_views(views: Iterable[Mapping[str, View]]) -> dict[str, dict[str, float]]:
    """Several spy identities' views as one: the earliest report of each announcer per item."""
    merged: dict[str, dict[str, float]] = {}
    for part in views:
        for item, view in part.items():
            into = merged.setdefault(item, {})
            for who, t in view.items():
                into[who] = min(t, into.get(who, t))
    return merged


def spy_scores(views: Mapping[str, View], truth: Mapping[str, str], policy_of: Mapping[str, str],
               edges: Iterable[tuple[str, str]], spy_nodes: int) -> list[PrivacyScore]:
    """Every estimator's score over every honest node's transactions, labelled with their relay
    policy, or, when the honest nodes run several (`policy_of`: honest node -> its relay policy),
    over all of them ("all") and over each policy's senders (every honest node stays a candidate,
    so naming a node of another policy is a wrong guess)."""
    honest = sorted(policy_of)
    guesses = estimate(views, honest, edges)  # every honest node is a candidate, whatever its policy
    policies = sorted(set(policy_of.values()))
    parts = [(policies[0] if len(policies) == 1 else ALL_POLICIES, truth, honest)]
    if len(policies) > 1:
        parts += [(policy, {item: src for item, src in truth.items() if policy_of.get(src) == policy},
                   [n for n in honest if policy_of[n] == policy]) for policy in policies]
    evaluated = [(policy, {name: score(name, guesses[name], part, nodes) for name in ESTIMATORS})
                 for policy, part, nodes in parts]
    out = []
    for policy, scores in evaluated:
        for name in ESTIMATORS:
            d = scores[name].to_dict()
            out.append(PrivacyScore(estimator=name, relay_policy=policy, spy_nodes=spy_nodes, honest_nodes=len(honest),
                                    spy_share=spy_nodes / (spy_nodes + len(honest)) if spy_nodes else 0.0,
                                    transactions=int(d["transactions"]), guessed=int(d["guessed"]),
                                    correct=int(d["correct"]), precision=float(d["precision"]),
                                    recall=float(d["recall"]), precision_micro=float(d["precision_micro"]),
                                    per_node=d["per_node"]))  # type: ignore[arg-type]
    return out


@dataclass(frozen=True)
class PolicyRun:
    """One relay policy's run against one spy: its scores and its transactions' propagation."""

    relay_policy: str
    seed: int
    honest_nodes: int
    spy_nodes: int
    scores: Mapping[str, Score | PrivacyScore]  # by estimator; both have precision, recall, precision_micro
    propagation: KindPropagation

    @property
    def spy_share(self) -> float:
        """p: the spy's share of all nodes (Dandelion++'s parameter)."""
        return self.spy_nodes / (self.spy_nodes + self.honest_nodes)


def policy_runs(scores: Sequence[PrivacyScore], items: Sequence[ItemObservation], seed: int) -> list[PolicyRun]:
    """A run's spy scores as PolicyRuns (one per relay_policy label), each with the propagation of
    the transactions its senders injected (all of them for the "all" label)."""
    out = []
    for policy in dict.fromkeys(s.relay_policy for s in scores):
        mine = {s.estimator: s for s in scores if s.relay_policy == policy}
        first = next(iter(mine.values()))
        senders = {n for n, x in first.per_node.items() if x.get("sent")}
        txs = [item_propagation(o) for o in items if o.kind == "tx" and (policy == ALL_POLICIES or o.origin_node in senders)]
        out.append(PolicyRun(policy, seed, first.honest_nodes, first.spy_nodes, mine, kind_propagation("tx", txs)))
    return out


def privacy_rows(runs: Sequence[PolicyRun]) -> list[dict[str, object]]:
    """One row per run and estimator: the table of the privacy-latency trade-off."""
    rows: list[dict[str, object]] = []
    for run in runs:
        prop = run.propagation
        for name in ESTIMATORS:
            s = run.scores[name]
            rows.append({"relay_policy": run.relay_policy, "seed": run.seed, "estimator": name,
                         "spy_share": run.spy_share, "precision": s.precision, "recall": s.recall,
                         "precision_micro": s.precision_micro, "transactions": s.transactions,
                         "p50": prop.p50.median, "p90": prop.p90.median, "p100": prop.p100.median})
    return rows

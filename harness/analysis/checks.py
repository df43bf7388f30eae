"""Evaluates a plan's ``expect:`` checks against what a run observed -> report CheckResults.

One function per check, in CHECKS keyed by the names of harness/scenario/checks.py; adding a check
= one ``@check("name")`` function here plus its params model there. Figures come from
harness.analysis.figures (the same numbers the report plots). A check that cannot be evaluated (no item
injected, no victim) is an ``error``, never a silent pass.

Params arrive as the scenario wrote them, durations in seconds; selectors (``attackers``,
``victim``) as a list of node names (planner-resolved) or a selector mapping (resolved here).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from harness.analysis.model import Observations, PrivacyScore, SpamRun
from harness.analysis.privacy import ALL_POLICIES
from harness.analysis.figures.bans import honest_nodes_banned, time_to_ban
from harness.analysis.figures.bootstrap import censorship, heal_times, seeder_honest_at, victim_block_delays
from harness.analysis.figures.eclipse import EclipseShare, VictimEclipse, eclipse_figures, eclipse_share
from harness.analysis.figures.propagation import time_to_reach
from harness.plan.model import CheckPlan, Plan
from harness.analysis.model import CheckResult, CheckVerdict

CheckFn = Callable[[Mapping[str, Any], Observations, Plan], CheckResult]
CHECKS: dict[str, CheckFn] = {}


class CheckUnevaluable(Exception):
    """The observations cannot answer the check (becomes an ``error`` result, with this message)."""


def check(name: str, description: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        fn.description = description  # type: ignore[attr-defined]
        CHECKS[name] = fn
        return fn

    return register


def select(plan: Plan, selector: Any, default_role: str | None = None) -> list[str]:
    """Node names from a resolved list, a single name, or a {nodes, role, group} mapping (mode all)."""
    if selector is None:
        return plan.names(default_role) if default_role else []
    if isinstance(selector, str):
        return [selector]
    if isinstance(selector, (list, tuple)):
        return list(selector)
    from harness.scenario.selectors import pattern_matcher  # patterns as the scenario writes them

    names = selector.get("nodes")
    matchers = [pattern_matcher(p) for p in names] if names else None
    return [n.name for n in plan.peers()
            if (matchers is None or any(m(n.name) for m in matchers))
            and selector.get("role") in (None, n.role) and selector.get("group") in (None, n.group)]


def _result(name: str, value: Any, bound: Any, ok: bool, unit: str = "", details: str = "") -> CheckResult:
    return CheckResult(name=name, description=CHECKS[name].description, value=value, bound=bound,  # type: ignore[attr-defined]
                       verdict=CheckVerdict.PASS if ok else CheckVerdict.FAIL, unit=unit, details=details)


def _propagation(name: str, kind: str, params: Mapping[str, Any], obs: Observations) -> CheckResult:
    quantile, below = int(params.get("quantile", 90)), float(params["below"])
    items = [i for i in obs.items if i.kind == kind]
    if not items:
        raise CheckUnevaluable(f"no {kind} was injected, so {kind} propagation cannot be measured")
    times = {i.item_id: time_to_reach(i, quantile) for i in items}
    never = sorted(k for k, t in times.items() if t is None)
    if never:
        return _result(name, None, f"<= {below:g}", False, "s",
                       f"{len(never)} of {len(items)} {kind}s never reached {quantile}% of honest nodes (first: {never[0][:16]})")
    worst_id = max(times, key=lambda k: times[k])  # type: ignore[arg-type, return-value]
    worst = times[worst_id]
    return _result(name, round(worst, 3), f"<= {below:g}", worst <= below, "s",
                   f"slowest of {len(items)} {kind}s to reach {quantile}% of honest nodes: {worst_id[:16]}")


@check("tx_propagation", "Time for a transaction to reach the quantile of honest nodes.")
def _tx_propagation(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    return _propagation("tx_propagation", "tx", params, obs)


@check("block_propagation", "Time for a block to reach the quantile of honest nodes.")
def _block_propagation(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    return _propagation("block_propagation", "block", params, obs)


def _spy_score(params: Mapping[str, Any], obs: Observations) -> PrivacyScore:
    """The score the params name: their estimator over their relay policy's senders (default: over
    every honest node, which a single-policy network labels with its policy)."""
    estimator = params.get("estimator", "first-spy")
    scores = [s for s in obs.privacy if s.estimator == estimator]
    if not scores:
        raise CheckUnevaluable("no spy scores: the run has no spy attacker, or no transaction was injected")
    wanted = params.get("relay_policy")
    if wanted is None:
        policies = {s.relay_policy for s in scores}
        wanted = ALL_POLICIES if ALL_POLICIES in policies else next(iter(policies))
    found = next((s for s in scores if s.relay_policy == wanted), None)
    if found is None:
        raise CheckUnevaluable(f"no honest node sent with relay policy {wanted!r}; "
                               f"scored: {sorted({s.relay_policy for s in scores})}")
    if not found.transactions:
        raise CheckUnevaluable(f"no transaction from {wanted} senders to score the spy against")
    return found


@check("spy_precision_at_most", "A spy's source estimator names the right sender for at most this share (precision).")
def _spy_precision(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    s, bound = _spy_score(params, obs), float(params["at_most"])
    return _result("spy_precision_at_most", round(s.precision, 4), f"<= {bound:g}", s.precision <= bound, "",
                   f"{s.estimator} against {s.relay_policy} senders: precision {s.precision:.3f}, recall {s.recall:.3f} "
                   f"over {s.transactions} txs (spy share p = {s.spy_share:.3f})")


@check("spy_recall_within", "A spy's recall stays within tolerance of its share of nodes p (Dandelion++'s bound).")
def _spy_recall(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    s, tol = _spy_score(params, obs), float(params["tolerance"])
    return _result("spy_recall_within", round(s.recall, 4), f"{s.spy_share:.3f} ± {tol:g}",
                   abs(s.recall - s.spy_share) <= tol, "",
                   f"{s.estimator} against {s.relay_policy} senders: recall {s.recall:.3f} over {s.transactions} txs, "
                   f"spy share p = {s.spy_share:.3f}")


@check("spam_banned", "Every attacker peer is banned (or discouraged) by an honest node in time.")
def _spam_banned(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    within = float(params["within"])
    wanted = set(select(plan, params.get("attackers"), default_role="attacker"))
    # a real bitcoind is not held to our node's table: its reaction is a figure (report "spam"), not a verdict
    runs = [r for r in obs.spam if r.attacker in wanted and r.target_kind == "light"]
    if runs:
        return _spam_behaviours(runs, within)
    attackers = [a for a in obs.attackers if a.name in wanted]
    if not attackers:
        raise CheckUnevaluable("no attacker matches the check's `attackers` selector")
    figures = time_to_ban(obs.bans, attackers)
    late = [f.attacker for f in figures if f.seconds_to_ban is None or f.seconds_to_ban > within]
    slowest = max((f.seconds_to_ban for f in figures if f.seconds_to_ban is not None), default=None)
    details = f"{len(attackers) - len(late)} of {len(attackers)} attackers banned within {within:g} s"
    if late:
        details += f"; not in time: {', '.join(sorted(late)[:5])}{' ...' if len(late) > 5 else ''}"
    return _result("spam_banned", round(slowest, 3) if slowest is not None else None, f"<= {within:g}", not late, "s", details)


def _spam_behaviours(runs: Sequence[SpamRun], within: float) -> CheckResult:
    """Spam identities that report their runs: every behaviour against every target got the
    table's score and outcome, and a reaction (ban, discouragement, disconnection) came within the
    bound. The slowest reaction is the value."""
    wrong = [r for r in runs if not r.as_expected]
    late = [r for r in runs if r.expected_outcome != "none" and (r.seconds_to_react is None or r.seconds_to_react > within)]
    slowest = max((r.seconds_to_react for r in runs if r.seconds_to_react is not None and r.expected_outcome != "none"),
                  default=None)
    details = f"{len(runs) - len(wrong)} of {len(runs)} behaviour runs as the misbehaviour table says"
    if wrong:
        details += "; not: " + ", ".join(
            f"{r.behaviour} vs {r.target} ({r.policy}): expected {r.expected_score} pts {r.expected_outcome}, "
            f"observed {r.observed_score} pts {r.observed_outcome}{' error ' + r.error if r.error else ''}"
            for r in wrong[:5]) + (" ..." if len(wrong) > 5 else "")
    if late:
        details += f"; no reaction within {within:g} s: " + ", ".join(sorted({f"{r.behaviour} ({r.policy})" for r in late})[:5])
    return _result("spam_banned", round(slowest, 3) if slowest is not None else None, f"<= {within:g}",
                   not wrong and not late, "s", details)


@check("no_honest_banned", "No honest node bans or discourages another honest node.")
def _no_honest_banned(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    wrong = honest_nodes_banned(obs.bans)
    details = "; ".join(f"{b.banning_node} banned {b.banned_node or b.banned_address} ({b.reason})" for b in wrong[:5])
    return _result("no_honest_banned", len(wrong), "== 0", not wrong, "bans", details)


def _victim_figures(params: Mapping[str, Any], obs: Observations, plan: Plan) -> list[VictimEclipse]:
    wanted = set(select(plan, params.get("victim")))
    series = [v for v in obs.victims if v.victim in wanted and v.samples]
    if not series:
        raise CheckUnevaluable(f"no outbound-peer samples of the victims {sorted(wanted)[:5]}")
    return eclipse_figures(series, obs.started_at, obs.ended_at)


def _share_details(share: EclipseShare) -> str:
    reached = f", reached at {share.reached_at:.1f} s" if share.reached_at is not None else ""
    return (f"{share.eclipsed} of {share.victims} victims eclipsed at the end{reached} "
            f"({share.ever_eclipsed} at some moment)")


@check("not_eclipsed", "The victims' outbound peers are never mostly attackers, and at most max_eclipsed_share "
                       "of them end the run eclipsed.")
def _not_eclipsed(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    bound = float(params.get("max_attacker_share", 0.5))
    max_eclipsed = float(params.get("max_eclipsed_share", 0.0))
    figures = _victim_figures(params, obs, plan)
    worst_share, worst_victim = max((f.max_share or 0.0, f.victim) for f in figures)
    share = eclipse_share(figures)
    ok = worst_share <= bound and share.share <= max_eclipsed
    return _result("not_eclipsed", round(worst_share, 3), f"<= {bound:g}", ok, "share",
                   f"highest attacker share of outbound peers: {worst_victim}; {_share_details(share)} "
                   f"(allowed: {max_eclipsed:g})")


@check("eclipsed", "At least min_share of the victims end the run eclipsed (every outbound peer an attacker), "
                   "reached within the bound.")
def _eclipsed(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    need = float(params.get("min_share", 1.0))
    within = params.get("within")
    share = eclipse_share(_victim_figures(params, obs, plan))
    ok = share.share >= need and (within is None or (share.reached_at is not None and share.reached_at <= float(within)))
    bound = f">= {need:g}" + (f" within {float(within):g} s" if within is not None else "")
    return _result("eclipsed", round(share.share, 3), bound, ok, "share of victims", _share_details(share))


@check("all_connected", "Every honest node ends with at least min_outbound outbound peers.")
def _all_connected(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    need = int(params.get("min_outbound", 1))
    honest = plan.names("honest")
    counts = {n: obs.outbound_at_end.get(n, 0) for n in honest}
    short = sorted(n for n, c in counts.items() if c < need)
    details = f"{len(short)} of {len(honest)} honest nodes below: {', '.join(short[:5])}" if short else ""
    if obs.unreachable:
        details += f"{'; ' if details else ''}unreachable at the end: {', '.join(obs.unreachable[:5])}"
    return _result("all_connected", min(counts.values(), default=0), f">= {need}", not short, "outbound peers", details)


@check("healed_within", "Every poisoned victim has an honest outbound peer again within the bound after the "
                        "seeder turns honest.")
def _healed_within(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    within = float(params["within"])
    honest_at = seeder_honest_at(plan)
    if honest_at is None:
        raise CheckUnevaluable("the timeline never turns the seeder honest after a malicious mode: nothing to heal from")
    wanted = set(select(plan, params.get("victim")))
    heals = [h for h in heal_times([v for v in obs.victims if v.victim in wanted], obs.started_at + honest_at) if h.poisoned]
    if not heals:
        raise CheckUnevaluable(f"no victim of {sorted(wanted)[:5]} was eclipsed before the seeder turned honest "
                               f"at {honest_at:g} s: the attack never took hold, so there is no heal to time")
    late = sorted(h.victim for h in heals if h.heal_seconds is None or h.heal_seconds > within)
    times = [h.heal_seconds for h in heals if h.heal_seconds is not None]
    details = f"{len(heals) - len(late)} of {len(heals)} poisoned victims healed within {within:g} s of the seeder " \
              f"turning honest at {honest_at:g} s: " + ", ".join(
                  f"{h.victim} {'never' if h.heal_seconds is None else format(h.heal_seconds, '.1f') + ' s'}"
                  for h in heals[:8]) + (" ..." if len(heals) > 8 else "")
    worst = None if len(times) < len(heals) else round(max(times), 3)
    return _result("healed_within", worst, f"<= {within:g}", not late, "s", details)


@check("censored_share", "Share of the victims' transactions that never reached an honest node other than the victims.")
def _censored_share(params: Mapping[str, Any], obs: Observations, plan: Plan) -> CheckResult:
    victims = set(select(plan, params.get("victim")))
    c = censorship(obs.items, victims)
    if c.share is None:
        raise CheckUnevaluable(f"no transaction was injected at the victims {sorted(victims)[:5]}")
    low, high = params.get("at_least"), params.get("at_most")
    bound = " and ".join(b for b in (f">= {low:g}" if low is not None else "", f"<= {high:g}" if high is not None else "") if b)
    ok = (low is None or c.share >= low) and (high is None or c.share <= high)
    delays = victim_block_delays(obs.items, victims)
    details = f"{c.censored} of {c.total} victims' transactions never reached another honest node" + (
        f"; blocks reached the victims {min(delays):.1f} to {max(delays):.1f} s after injection" if delays else "")
    return _result("censored_share", round(c.share, 3), bound, ok, "share", details)


def evaluate(expect: Sequence[CheckPlan], obs: Observations, plan: Plan) -> list[CheckResult]:
    """Every expectation -> one CheckResult (pass, fail, or error with the reason)."""
    results = []
    for i, x in enumerate(expect):
        # Report names must be unique: the second tx_propagation check becomes tx_propagation#2.
        seen = sum(1 for y in expect[:i] if y.check == x.check)
        name = x.check if not seen else f"{x.check}#{seen + 1}"
        fn = CHECKS.get(x.check)
        try:
            if fn is None:
                raise CheckUnevaluable(f"no evaluator for check {x.check!r}; known: {sorted(CHECKS)}")
            result = fn(x.params, obs, plan)
        except (CheckUnevaluable, KeyError, ValueError, TypeError) as e:
            result = CheckResult(name=x.check, description=getattr(fn, "description", ""), value=None, bound=None,
                                 verdict=CheckVerdict.ERROR, details=f"{type(e).__name__}: {e}" if not isinstance(e, CheckUnevaluable) else str(e))
        if name != result.name:
            result = CheckResult(name, result.description, result.value, result.bound, result.verdict, result.unit, result.details)
        results.append(result)
    return results

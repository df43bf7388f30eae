"""PNG plots of a run: propagation curves, bans over time, the peer graph, eclipse share per victim.

Figures are built with ``matplotlib.figure.Figure`` and saved through the Agg renderer, never through
``pyplot``: no display is needed and no global backend or figure state is touched, so plotting is
safe in CI, in threads and next to a user's own matplotlib session. Empty inputs give a plot that
says "no data" instead of an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import networkx as nx
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import PercentFormatter

from harness.analysis.figures.eclipse import VictimEclipse
from harness.analysis.figures.propagation import item_propagation, kind_propagation, propagation_curve
from harness.analysis.model import ITEM_KINDS, ItemObservation, PeerGraph

FIGSIZE = (10.0, 6.0)  # inches
DPI = 110
ROLE_COLOURS = {"honest": "tab:blue", "attacker": "tab:red", "seeder": "tab:green"}
OTHER_ROLE_COLOUR = "tab:gray"
MAX_LABELLED_LINES = 10  # beyond this, lines share one colour and one legend entry
MAX_LABELLED_NODES = 40  # beyond this, node names would cover the graph
MAX_ARROWS = 400  # beyond this, edges are plain lines: an arrow patch each is slow (1,100 arrows of the
# 100-node spy run took 10-17 s of its report at load 30-40; as lines 0.7 s)
LAYOUT_SEED = 1  # spring layout seed: the same graph always gets the same picture
# beyond this, the peer graph is drawn as its degree distribution: the spring layout of 10,000 nodes
# and ~100,000 links took minutes of the report (the members still running meanwhile), and the
# picture it gives is a grey disc
MAX_LAYOUT_NODES = 1500
_KIND_TITLE = {"tx": "transactions", "block": "blocks"}


def _new_figure() -> Figure:
    return Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")


def _no_data(ax: Axes, message: str = "no data") -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=16, color="dimgray", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png")
    return path


def _short(name: str, width: int = 14) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def _propagation_panel(ax: Axes, kind: str, items: Sequence[ItemObservation]) -> None:
    ax.set_title(f"Propagation of {_KIND_TITLE[kind]} ({len(items)} items)")
    ax.set_xlabel("time since origin (s)")
    ax.set_ylabel("share of honest nodes")
    curves = [(obs, propagation_curve(obs)) for obs in items]
    curves = [(obs, c) for obs, c in curves if c]
    if not curves:
        _no_data(ax)
        return
    x_end = max(c[-1][0] for _, c in curves) * 1.05 or 1.0
    labelled = len(curves) <= MAX_LABELLED_LINES
    for obs, curve in curves:
        xs = [0.0] + [t for t, _ in curve] + [x_end]
        ys = [0.0] + [s for _, s in curve] + [curve[-1][1]]
        ax.plot(
            xs, ys, drawstyle="steps-post", linewidth=1.5 if labelled else 0.8, alpha=0.9 if labelled else 0.35,
            color=None if labelled else "tab:blue", label=_short(obs.item_id) if labelled else None,
        )  # fmt: skip
    if not labelled:
        ax.plot([], [], color="tab:blue", alpha=0.6, label=f"{len(curves)} {_KIND_TITLE[kind]}, one line each")
    for share in (0.5, 0.9):
        ax.axhline(share, color="black", linestyle="--", linewidth=0.8, alpha=0.6)
    aggregate = kind_propagation(kind, [item_propagation(obs) for obs in items])
    for label, summary, y in (("p50", aggregate.p50, 0.5), ("p90", aggregate.p90, 0.9)):
        if summary.median is not None:
            ax.plot([summary.median], [y], marker="o", color="black", markersize=5, zorder=5)
            ax.annotate(
                f"median {label} = {summary.median:.2f} s", (summary.median, y), textcoords="offset points",
                xytext=(8, -14), fontsize=9, bbox={"boxstyle": "round", "fc": "white", "alpha": 0.8},
            )  # fmt: skip
        else:
            ax.annotate(f"no item reached {label}", (0, y), textcoords="offset points", xytext=(8, 4), fontsize=9)
    ax.set_xlim(0, x_end)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)


def plot_propagation(path: Path, items: Sequence[ItemObservation]) -> Path:
    """Share of honest nodes vs time since origin, one line per item, one panel per kind present."""
    fig = _new_figure()
    kinds = [k for k in ITEM_KINDS if any(obs.kind == k for obs in items)]
    if not kinds:
        ax = fig.add_subplot()
        ax.set_title("Propagation")
        _no_data(ax)
        return _save(fig, path)
    for i, kind in enumerate(kinds, start=1):
        _propagation_panel(fig.add_subplot(1, len(kinds), i), kind, [obs for obs in items if obs.kind == kind])
    return _save(fig, path)


def plot_bans(path: Path, series: Mapping[str, Sequence[tuple[float, int]]], duration: float | None = None) -> Path:
    """Cumulative bans per reason over the run (step plot), x in seconds since the run start."""
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title("Bans over time by reason")
    ax.set_xlabel("time since run start (s)")
    ax.set_ylabel("bans (cumulative)")
    if not any(len(points) > 1 for points in series.values()):
        _no_data(ax, "no data (no bans)")
        return _save(fig, path)
    x_end = max([duration or 0.0] + [p[-1][0] for p in series.values()])
    for reason, points in series.items():
        xs = [t for t, _ in points] + [x_end]
        ys = [n for _, n in points] + [points[-1][1]]
        ax.plot(xs, ys, drawstyle="steps-post", linewidth=1.8, label=f"{reason} ({points[-1][1]})")
    ax.set_xlim(0, x_end or 1.0)
    ax.set_ylim(bottom=0)
    ax.yaxis.get_major_locator().set_params(integer=True)
    ax.grid(True, alpha=0.3)
    ax.legend(title="reason (total)", fontsize=8)
    return _save(fig, path)


def plot_peer_graph(path: Path, graph: PeerGraph, seed: int = LAYOUT_SEED) -> Path:
    """The peer graph in a spring layout: attackers red, honest blue, seeder green, arrows from the dialler."""
    fig = _new_figure()
    ax = fig.add_subplot()
    connections = {(e.initiator, e.acceptor) for e in graph.edges if e.initiator != e.acceptor}
    g = nx.Graph()
    g.add_nodes_from(sorted(graph.roles))
    g.add_edges_from(sorted(connections))
    arrows = len(connections) <= MAX_ARROWS
    how = "; arrows from the dialler" if arrows else ""
    ax.set_title(f"Peer graph ({g.number_of_nodes()} nodes, {len(connections)} connections{how})")
    ax.set_axis_off()
    if g.number_of_nodes() == 0:
        _no_data(ax)
        return _save(fig, path)
    if g.number_of_nodes() > MAX_LAYOUT_NODES:
        _plot_degrees(ax, connections, graph.roles, g.nodes)
        return _save(fig, path)
    pos = nx.spring_layout(g, seed=seed, k=1.5 / math.sqrt(g.number_of_nodes()))
    if arrows:
        for a, b in sorted(connections):
            ax.annotate(
                "", xy=pos[b], xytext=pos[a], zorder=1,
                arrowprops={"arrowstyle": "-|>", "color": "gray", "alpha": 0.5, "lw": 0.7, "shrinkA": 6, "shrinkB": 6},
            )  # fmt: skip
    else:
        ax.add_collection(LineCollection([(pos[a], pos[b]) for a, b in connections], colors="gray", alpha=0.3, lw=0.5))
    roles = {node: graph.roles.get(node, "unknown") for node in g.nodes}
    handles = []
    for role in sorted(set(roles.values()), key=lambda r: (r not in ROLE_COLOURS, r)):
        members = [n for n in g.nodes if roles[n] == role]
        colour = ROLE_COLOURS.get(role, OTHER_ROLE_COLOUR)
        ax.scatter([pos[n][0] for n in members], [pos[n][1] for n in members], s=60, c=colour, zorder=2,
                   edgecolors="white", linewidths=0.8)  # fmt: skip
        handles.append(Line2D([], [], marker="o", linestyle="", color=colour, label=f"{role} ({len(members)})"))
    if g.number_of_nodes() <= MAX_LABELLED_NODES:
        for node, (x, y) in pos.items():
            ax.annotate(node, (x, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=7, zorder=3)
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)  # outside: never hides a node
    return _save(fig, path)


def _plot_degrees(ax: Axes, connections: set[tuple[str, str]], roles: Mapping[str, str], nodes: Sequence[str]) -> None:
    """How many nodes have how many outbound (dialled) and inbound (accepted) links, honest nodes only
    where there are any: the shape of a network too large to lay out."""
    nodes = list(nodes)
    outbound = {n: 0 for n in nodes}
    inbound = dict(outbound)
    for a, b in connections:
        outbound[a] += 1
        inbound[b] += 1
    shown = [n for n in nodes if roles.get(n) == "honest"] or nodes
    ax.set_axis_on()
    for label, counts, colour in (("outbound", outbound, "tab:blue"), ("inbound", inbound, "tab:orange")):
        values = [counts[n] for n in shown]
        ax.hist(values, bins=range(0, max(values) + 2), alpha=0.6, color=colour, label=f"{label} (median {sorted(values)[len(values) // 2]})")
    ax.set_xlabel("links per node")
    ax.set_ylabel("nodes" if shown is nodes else "honest nodes")
    ax.grid(True, alpha=0.3)
    ax.legend(title=f"too many nodes to lay out (> {MAX_LAYOUT_NODES})", fontsize=8)


def plot_eclipse(path: Path, victims: Sequence[VictimEclipse], duration: float | None = None) -> Path:
    """Attacker share of each victim's outbound peers over time; 100 % with >= 1 outbound = eclipsed."""
    fig = _new_figure()
    ax = fig.add_subplot()
    ax.set_title("Eclipse: attacker share of outbound peers per victim")
    ax.set_xlabel("time since run start (s)")
    ax.set_ylabel("attacker share of outbound peers")
    plotted = [v for v in victims if v.share_series]
    if not plotted:
        _no_data(ax)
        return _save(fig, path)
    x_end = max([duration or 0.0] + [v.share_series[-1][0] for v in plotted])
    for v in plotted:
        xs = [t for t, _ in v.share_series] + [x_end]
        ys = [s for _, s in v.share_series] + [v.share_series[-1][1]]
        state = f"eclipsed {v.eclipsed_seconds:.0f} s" if v.eclipsed else "never eclipsed"
        ax.plot(xs, ys, drawstyle="steps-post", linewidth=1.6, label=f"{_short(v.victim, 20)} ({state})")
    ax.axhline(1.0, color="tab:red", linestyle="--", linewidth=0.8, alpha=0.7)
    ax.annotate("eclipsed", (0, 1.0), textcoords="offset points", xytext=(4, 4), color="tab:red", fontsize=9)
    ax.set_xlim(min(0.0, *(v.share_series[0][0] for v in plotted)), x_end or 1.0)
    ax.set_ylim(-0.02, 1.1)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)

"""harness: a chaos testbed for Bitcoin-style peer-to-peer networks."""

__version__ = "0.1.0"

# The harness's layers, lowest first: a module may import from its own layer and the ones before
# it, never from a later one (not even under TYPE_CHECKING). The flow of a run reads left to right:
# scenario file -> plan -> (backend runs it, controller plays it) -> analysis -> report.
# The node package `harness_node` sits below all of them.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors",),
    ("scenario",),
    ("plan",),
    ("analysis",),
    ("backends",),
    ("controller",),
    ("report",),
    ("run",),
    ("cli",),
)

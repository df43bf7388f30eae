"""The open-files budget of a process, shared by the nodes it hosts.

Bitcoin Core sizes its connection limit by the descriptors it may open (init.cpp: it raises
RLIMIT_NOFILE as far as it can, keeps MIN_CORE_FILEDESCRIPTORS = 150 for itself and a few for
addnode, and lowers nMaxConnections to fit the rest; outbound slots come out of that first and
inbound get what is left, so a node at its limit refuses inbound and still dials). A host process
runs hundreds of nodes under one such limit. The same rule holds for the process as a whole: each
node sets its listener, its outbound slots and its manual peers aside when it starts, and the
nodes' inbound links share what remains. Without it, the nodes whose addresses the DNS seeder
handed out first drew so many inbound links that their process reached its limit, and from then on
every dial and accept of every node in it failed at once (docs/benchmarks.md, issue 17, twentieth
round).
"""

from __future__ import annotations

import asyncio
import weakref

from ..procutil import raise_fd_limit

# Kept for the process itself, as Core's MIN_CORE_FILEDESCRIPTORS: stdio, logs, the event loop,
# the control site and its clients, seed queries, module files. The harness plans workers with the
# same figure (harness/backends/local/capacity.py FDS_PER_PROCESS).
PROCESS_RESERVE = 300


class DescriptorBudget:
    """Descriptors set aside (listeners, outbound slots, the process's own) and inbound links held."""

    __slots__ = ("limit", "reserved", "inbound", "__weakref__")

    def __init__(self, limit: int, reserve: int = PROCESS_RESERVE) -> None:
        self.limit = limit
        self.reserved = reserve
        self.inbound = 0

    def set_aside(self, n: int) -> None:
        self.reserved += n

    def give_back(self, n: int) -> None:
        self.reserved -= n

    def admits_inbound(self) -> bool:
        """Room for one more inbound link once every node's own needs are met."""
        return self.reserved + self.inbound < self.limit


# One budget per event loop: a host runs all its nodes on one loop, and tests run a loop each.
_BUDGETS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, DescriptorBudget] = weakref.WeakKeyDictionary()


def budget_for(loop: asyncio.AbstractEventLoop) -> DescriptorBudget:
    budget = _BUDGETS.get(loop)
    if budget is None:
        limit = raise_fd_limit()
        budget = _BUDGETS[loop] = DescriptorBudget(limit if limit >= 0 else 1 << 30)  # -1: RLIM_INFINITY
    return budget

"""The controller's real HTTP client, counting the requests it sends per path (without the query):
how the collector tests tell how many requests a poll costs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from harness.backends.client import ControlClient
from harness.backends.endpoint import Endpoint


class CountingClient(ControlClient):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.paths: Counter[str] = Counter()

    async def request(self, ep: Endpoint, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        self.paths[path.split("?")[0]] += 1
        return await super().request(ep, method, path, body, **kw)

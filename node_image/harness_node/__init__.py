"""The harness's lightweight Bitcoin P2P node, layered like Bitcoin Core's test framework:
codec -> connection -> peer -> node services -> control API and metrics."""

__version__ = "0.1.0"
USER_AGENT = f"/harness-node:{__version__}/"

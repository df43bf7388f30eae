"""The controller: runs a deployed plan's timeline, observes the nodes, evaluates the checks.

timeline.py (actions) and collector.py (observations) -> service.py (the controller as a loop,
in-process for `run` or placed by the backend for `deploy`). It talks to nodes through
harness.backends.client at the endpoints the backend reports.
"""

"""The controller: runs a deployed plan's timeline, observes the nodes, evaluates the checks.

client.py (control API calls) -> timeline.py (actions) and collector.py (observations) ->
service.py (the controller as a loop, in-process for `run` or detached for `deploy`).
"""

"""The Kubernetes backend: one Helm release of helm/harness per testnet (docs/kubernetes.md).

layout.py (names, grouping, pods, the transport table) -> values.py (plan -> chart values) ->
chart.py (Helm's engine) and cluster.py (the kubernetes client) -> faults.py -> backend.py.
"""

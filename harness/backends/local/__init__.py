"""The local backend: nodes as `harness-node` processes on loopback addresses (backend.py), and the
process bookkeeping it needs (processes.py)."""

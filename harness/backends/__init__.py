"""Backends: where a plan's members run. base.py is the contract every backend implements,
registry.py maps names to backends (the CLI's --backend choices), client.py talks to a node's
control API, node_config.py completes the planned configs; local/ is the local-process backend."""

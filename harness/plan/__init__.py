"""The plan: a pure function from (scenario, seed) to everything a backend and the controller
need (planner.py), in one model with one canonical-JSON digest (model.py)."""

"""What a run observed and what it means: the observation model (model.py), figures computed from
it (figures/) and the checks that judge it (checks.py). Pure: no I/O, no clocks."""

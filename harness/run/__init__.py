"""Running a scenario end to end: the run directory (rundir.py), the library behind every command
(runner.py) and progress events (progress.py)."""

"""The `harness` command (app.py) and how it shows results (render.py)."""

"""The `harness` command (app.py; its shared options in options.py, `harness image` in image.py) and how it shows results (render.py)."""

from __future__ import annotations


def main() -> None:
    """Console-script entry point (`harness = "harness.cli:main"`): the Typer app, imported here
    only when the command runs."""
    from harness.cli.app import main as run

    run()

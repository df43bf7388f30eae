def main() -> None:  # replaced by the Typer app
    raise SystemExit("harness CLI not built yet")

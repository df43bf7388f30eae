"""The seeder's command-line arguments, shared by `harness-node seeder` (cli.py) and
service.main_from_args without either importing the other."""

from __future__ import annotations

import argparse


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="harness-node seeder", description="Run the DNS seeder role.")
    parser.add_argument("--config", required=True, help="seeder config file (YAML or JSON)")
    parser.add_argument("--log-level", default="INFO", help="python logging level (default INFO)")
    parser.add_argument("--token-file", help="file holding the control API bearer token (e.g. a mounted Secret); "
                                             "overrides control_token in the config")
    return parser

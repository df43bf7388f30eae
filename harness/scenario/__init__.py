"""Scenario files: the schema (model), reading them with located errors (loader), durations and selectors."""

from harness.scenario.loader import load_scenario, parse_scenario, validate_scenario
from harness.scenario.model import Scenario
from harness.scenario.selectors import Member, Selector

__all__ = ["Member", "Scenario", "Selector", "load_scenario", "parse_scenario", "validate_scenario"]

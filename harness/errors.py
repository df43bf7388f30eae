"""Errors the harness raises, and the process exit codes, decided here and nowhere else.

Library code raises a `HarnessError` subclass with a message a user can act on; the CLI catches it
once at the command boundary, prints it and exits with the error's `exit_code`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence


class ExitCode(enum.IntEnum):
    OK = 0
    CHECKS_FAILED = 1  # the run worked, an expectation did not hold
    INVALID_INPUT = 2  # bad scenario, bad option, unavailable backend: nothing was started
    INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), the shell convention


class HarnessError(Exception):
    """Base of every error the harness reports to a user (no traceback)."""

    exit_code: int = ExitCode.INVALID_INPUT


class NotImplementedYet(HarnessError):
    """A command whose machinery arrives in a later release."""


class BackendUnavailable(HarnessError):
    """A backend that exists in the CLI's vocabulary but cannot run here (yet)."""


class BackendError(HarnessError):
    """The network could not be started, reached or changed (a crash, a timeout, a port in use).
    Exit code 1 like failed checks: ExitCode has no separate "run failed" code yet."""

    exit_code = ExitCode.CHECKS_FAILED


class MonitorUnavailable(HarnessError):
    """`--monitor` asked for a Prometheus this backend cannot start here (not installed): nothing
    was started."""


class AddressesInUse(BackendError):
    """The planned addresses are taken (another run?): nothing was started."""

    exit_code = ExitCode.INVALID_INPUT


class UnknownMember(BackendError):
    """A member name the run does not have (`harness logs NAME`): bad input, nothing changed."""

    exit_code = ExitCode.INVALID_INPUT


def format_path(path: Sequence[str | int]) -> str:
    """('network', 'groups', 1, 'count') -> 'network.groups[1].count'."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


class ScenarioError(HarnessError):
    """One problem in a scenario, located as `file:line:col: field.path: problem`.

    `file`, `line` and `column` are None when the scenario did not come from a file (built in code);
    `path` is the field path inside the scenario, empty for file-level problems (syntax, I/O).
    """

    exit_code = ExitCode.INVALID_INPUT

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: Sequence[str | int] = (),
    ) -> None:
        self.problem = problem
        self.file = file
        self.line = line
        self.column = column
        self.path = tuple(path)
        super().__init__(self.message)

    @property
    def location(self) -> str:
        where = self.file or "<scenario>"
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        return where

    @property
    def message(self) -> str:
        field = format_path(self.path)
        return f"{self.location}: {field}: {self.problem}" if field else f"{self.location}: {self.problem}"


class SweepError(HarnessError):
    """A `harness sweep` option that cannot be used (a malformed --set, too many cells): nothing ran."""

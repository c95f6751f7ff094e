"""A run as it goes: one line per node step, the model's reply as it streams, a spinner on long waits.

The spinner is drawn only when stdout is a terminal, and only once nothing has been heard for
`spinner_after` seconds; in a pipe the same lines and tokens are written plain, as they arrive.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.status import Status

from keel.render import step_line

__all__ = ["RunProgress"]


class RunProgress:
    """`on_step` and `on_token` callbacks for `Keel.run|resume|decide`; use it as a context manager."""

    def __init__(self, console: Console, *, spinner_after: float = 0.5) -> None:
        self.console = console
        self.spinner_after = spinner_after
        self._spinner: Status | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._streaming: str | None = None
        """The node whose reply is being written on the current (unfinished) line."""
        self._streamed: set[str] = set()

    def __enter__(self) -> RunProgress:
        self._arm()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._quiet()
        self._end_line()

    def on_step(self, node: str, update: dict[str, Any]) -> None:
        """A node finished: end a streamed reply's line, print the step's line, wait for the next."""
        self._quiet()
        self._end_line()
        streamed = node in self._streamed
        self._streamed.discard(node)
        line = step_line(node, update, streamed=streamed)
        if not (streamed and line == step_line(node, {})):  # its reply's line already named the node
            self.console.print(line, highlight=False)
        self._arm()

    def on_token(self, node: str, text: str) -> None:
        """A piece of the model's reply: written at once, after the node's name when a reply starts."""
        self._quiet()
        if self._streaming != node:
            self._end_line()
            self.console.print(f"[bold cyan]{node:<16}[/] ", end="", highlight=False)
            self._streaming = node
        self._streamed.add(node)
        self.console.print(text, end="", style="dim", markup=False, highlight=False)
        self.console.file.flush()

    def _end_line(self) -> None:
        if self._streaming is not None:
            self.console.print()
            self._streaming = None

    def _arm(self) -> None:
        """Start the spinner if nothing is heard for a while (a terminal only; a pipe gets no spinner)."""
        if not self.console.is_terminal or self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven outside an event loop: no timer, no spinner
            return
        self._timer = loop.call_later(self.spinner_after, self._spin)

    def _spin(self) -> None:
        self._timer = None
        if self._spinner is None and self._streaming is None:
            self._spinner = self.console.status("working…", spinner="dots")
            self._spinner.start()

    def _quiet(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._spinner is not None:
            self._spinner.stop()
            self._spinner = None

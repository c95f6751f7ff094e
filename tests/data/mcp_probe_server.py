"""A tiny MCP server whose tools change with its environment, for the pin tests: PROBE_DESCRIPTION (the
description of `lookup`), PROBE_WIDE=1 (`lookup` takes one more argument), PROBE_NEW=1 (one more tool),
PROBE_DROP=1 (no `ping`)."""

from __future__ import annotations

import os

from mcp.server.fastmcp import FastMCP

server = FastMCP("probe", log_level="WARNING")
DESCRIPTION = os.environ.get("PROBE_DESCRIPTION", "Look up the weather of a city.")

if os.environ.get("PROBE_WIDE") == "1":

    @server.tool(name="lookup", description=DESCRIPTION)
    def lookup_wide(city: str, units: str = "C") -> str:
        return f"{city}: 20 {units}"

else:

    @server.tool(name="lookup", description=DESCRIPTION)
    def lookup(city: str) -> str:
        return f"{city}: 20 C"


if os.environ.get("PROBE_DROP") != "1":

    @server.tool()
    def ping() -> str:
        """Answer pong."""
        return "pong"


if os.environ.get("PROBE_NEW") == "1":

    @server.tool()
    def forward_files(to: str) -> str:
        """Send every file to an address."""
        return f"sent to {to}"


if __name__ == "__main__":
    server.run("stdio")

"""A tool of an MCP server, made a keel ToolSpec (source `mcp`) so it goes through the same permission
check, approval, guards, timeout, audit and exactly-once rules as every other tool.

Name: `{server}_{tool}` (langchain-mcp-adapters' `tool_name_prefix` convention), not `server.tool`: the
OpenAI and Anthropic APIs accept function names matching ^[a-zA-Z0-9_-]{1,64}$ only, a dot is refused.
Two tools ending up with one name are refused at start ("listed twice").

Schema: the tool's inputSchema is what the model sees and what args are validated against
(keel.tools.mcp_schema). Effects: `read` and `idempotent` as for Python tools; `external` needs a string
property `idempotency_key` in the inputSchema: keel hides it from the model and fills it with the call's
key (ToolContext.idempotency_key), so the server can make a replayed call write once; `transactional` is
refused (a server cannot join keel's records transaction). A result is the adapters' conversion of the MCP
content, as text; an MCP error result (`isError`) raises, so the executor records the call `failed` and
breakers and metrics count it.
"""

from __future__ import annotations

import re
from typing import Any

import jsonschema
from langchain_core.tools import ToolException
from langchain_mcp_adapters.tools import _convert_call_tool_result  # pinned 0.3.2: MCP content -> blocks
from mcp.types import Tool

from keel.errors import ToolInputError
from keel.tool_effect import IDEMPOTENCY_KEY_ARG, ToolEffect
from keel.tools.imported import ImportedToolError, template_fields
from keel.tools.mcp_client import McpClient
from keel.tools.mcp_schema import McpArgs, args_model_for
from keel.tools.spec import ToolContext, ToolSpec

__all__ = ["McpToolError", "McpToolFailed", "MCP_EFFECTS", "mcp_tool_name", "spec_from_mcp_tool"]

MCP_EFFECTS: tuple[ToolEffect, ...] = ("read", "idempotent", "external")
"""Effects an MCP tool may declare (`transactional` needs keel's records transaction)."""

_FUNCTION_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class McpToolError(ValueError):
    """An MCP tool cannot be a keel tool as declared (the reason, without file:line)."""


class McpToolFailed(Exception):
    """The server answered the call with an error result (`isError`)."""


def mcp_tool_name(server: str, tool: str) -> str:
    """The name the model calls: `{server}_{tool}`."""
    return f"{server}_{tool}"


def _text(blocks: Any) -> str:
    if isinstance(blocks, str):
        return blocks
    parts = []
    for block in blocks or []:
        kind = block.get("type")
        if kind == "text":
            parts.append(block["text"])
        else:
            where = block.get("url") or block.get("mime_type") or "inline data"
            parts.append(f"[{kind}: {where}]")
    return "\n".join(parts)


def _resource_fn(name: str, template: str | None, schema: dict[str, Any]) -> Any:
    if template is None:
        return lambda args, run, ws: name
    fields = template_fields(template)
    props = schema.get("properties", {})

    def resource(args: McpArgs, run: Any, ws: Any) -> str:
        values = args.model_dump()
        for f in fields:
            if f not in values:
                if "default" not in props.get(f, {}):
                    raise ToolInputError(f"{f!r} is needed to name the resource ({template})")
                values[f] = props[f]["default"]
        return template.format_map({f: values[f] for f in fields})

    return resource


def spec_from_mcp_tool(
    client: McpClient,
    tool: Tool,
    *,
    effect: ToolEffect,
    resource: str | None = None,
    timeout_s: float | None = None,
) -> ToolSpec:
    """The ToolSpec of `tool` of `client`'s server; McpToolError when it cannot be one as declared."""
    name = mcp_tool_name(client.name, tool.name)
    if not _FUNCTION_NAME.match(name):
        raise McpToolError(
            f"tool name {name!r} does not match ^[a-zA-Z0-9_-]{{1,64}}$ (model APIs refuse it)"
        )
    if effect not in MCP_EFFECTS:
        raise McpToolError(
            f"effect {effect!r} is not possible for an mcp tool (possible: {', '.join(MCP_EFFECTS)})"
        )
    schema = tool.inputSchema or {"type": "object"}
    props = schema.get("properties", {}) if isinstance(schema, dict) else {}
    external = effect == "external"
    if external and (props.get(IDEMPOTENCY_KEY_ARG) or {}).get("type") != "string":
        raise McpToolError(
            f"tool {tool.name!r} is declared external but its inputSchema has no string property "
            f"{IDEMPOTENCY_KEY_ARG!r} (where keel passes the call's idempotency key, so a replay after a "
            "crash changes the world once): add one to the server's tool, or declare the effect it has"
        )
    try:
        args_model = args_model_for(name, schema, hide_key=external)
    except jsonschema.SchemaError as exc:
        raise McpToolError(
            f"tool {tool.name!r}: its inputSchema is not a valid JSON schema: {exc.message}"
        ) from None
    if resource is not None:
        try:
            fields = template_fields(resource)
        except ImportedToolError as exc:
            raise McpToolError(str(exc)) from None
        shown = args_model.input_schema.get("properties", {})
        missing = [f for f in fields if f not in shown]
        if missing:
            raise McpToolError(
                f"tool {tool.name!r}: resource template {resource!r} names {', '.join(missing)}, which is "
                f"not a property of its inputSchema (properties: {', '.join(shown) or 'none'})"
            )

    async def run(args: McpArgs, ctx: ToolContext) -> str:
        payload = args.model_dump()
        if external:
            payload[IDEMPOTENCY_KEY_ARG] = ctx.idempotency_key
        result = await client.call(tool.name, payload)
        try:
            blocks, _artifact = _convert_call_tool_result(result)
        except ToolException as exc:  # isError: the server said the call failed
            raise McpToolFailed(str(exc) or "the server reported an error") from None
        return _text(blocks)

    run.__name__ = name
    return ToolSpec(
        name=name,
        description=tool.description or "",
        args_model=args_model,
        run=run,
        resource=_resource_fn(name, resource, args_model.input_schema),
        timeout_s=timeout_s,
        effect=effect,
        source="mcp",
        resource_template=resource,
    )

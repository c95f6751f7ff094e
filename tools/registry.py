"""The set of tools a graph may call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping

from keel.tools.spec import ToolSpec

__all__ = ["ToolRegistry", "default_registry", "UnknownTool"]


class UnknownTool(KeyError):
    """The model asked for a tool that is not registered."""

    def __str__(self) -> str:
        return f"unknown tool {self.args[0]!r}"


class ToolRegistry:
    """Tools by name; immutable once built."""

    def __init__(
        self,
        specs: Iterable[ToolSpec],
        *,
        closers: Iterable[Callable[[], Awaitable[None]]] = (),
        origins: Mapping[str, int] | None = None,
    ) -> None:
        self._specs: dict[str, ToolSpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"tool {spec.name!r} is registered twice")
            self._specs[spec.name] = spec
        self._closers = tuple(closers)
        self.origins: dict[str, int] = dict(origins or {})
        """The keel.yaml line that declared each tool (tools from a config only)."""

    async def aclose(self) -> None:
        """Release what the tools hold open (MCP sessions and their server processes)."""
        for close in self._closers:
            await close()

    def get(self, name: str) -> ToolSpec:
        """The tool called `name`, or UnknownTool."""
        try:
            return self._specs[name]
        except KeyError:
            raise UnknownTool(name) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[ToolSpec]:
        return iter(self._specs.values())

    def names(self) -> list[str]:
        """Registered tool names, in registration order."""
        return list(self._specs)

    def schemas(self) -> list[dict]:
        """OpenAI tool schemas for `bind_tools`."""
        return [spec.schema() for spec in self._specs.values()]

    def with_tools(self, *extra: ToolSpec) -> ToolRegistry:
        """A new registry with more tools."""
        return ToolRegistry([*self._specs.values(), *extra], closers=self._closers, origins=self.origins)


def default_registry() -> ToolRegistry:
    """The toolset keel ships: file tools over the workspace and the email outbox."""
    from keel.tools.email import EMAIL_TOOLS
    from keel.tools.files import FILE_TOOLS

    return ToolRegistry([*FILE_TOOLS, *EMAIL_TOOLS])

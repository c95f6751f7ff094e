"""keel's YAML files (policy, limits, prices, API keys): read with a size cap, parsed keeping line numbers.

Every file kind keeps its own schema and its own error class (a `YamlFileError`); this module gives them
one way to read the file and to say what is wrong with it: ``FILE:LINE: reason``. The document is walked
as composed nodes (``yaml.compose``), so any value's line is known when it turns out to be wrong.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

__all__ = ["MAX_YAML_BYTES", "YamlDoc", "YamlFileError"]

MAX_YAML_BYTES = 1 << 20
"""A configuration file larger than this is refused before it is parsed."""
_NULL = "tag:yaml.org,2002:null"


class YamlFileError(ValueError):
    """A configuration file is unreadable or invalid; the message is ``<file>:<line>: <reason>`` (line 0:
    no line to point at, such as a setting that names no file: ``<source>: <reason>``)."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}" if line else f"{source}: {reason}")
        self.source, self.line, self.reason = source, line, reason

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), (self.source, self.line, self.reason)


def line_of(node: yaml.Node) -> int:
    """The 1-based line a node starts on."""
    return node.start_mark.line + 1


class YamlDoc:
    """One parsed file: its root node and the helpers a schema uses to read it and to fail at a line."""

    def __init__(
        self,
        text: str,
        source: str = "<string>",
        *,
        error: type[YamlFileError] = YamlFileError,
        kind: str = "file",
    ) -> None:
        self.source, self.error = source, error
        if len(text.encode("utf-8", "surrogatepass")) > MAX_YAML_BYTES:
            raise self.fail(1, f"{kind} is larger than {MAX_YAML_BYTES} bytes")
        try:
            self._loader = yaml.SafeLoader(text)
            self.root: yaml.Node | None = self._loader.get_single_node()
        except yaml.YAMLError as exc:
            if isinstance(exc, yaml.reader.ReaderError):
                line = text.count("\n", 0, exc.position) + 1
                problem = f"special character #x{exc.character:04x}"
            else:
                mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
                line, problem = (mark.line + 1 if mark else 1), getattr(exc, "problem", None) or str(exc)
            hint = ' (quote glob patterns: "*")' if "alphabetic or numeric" in problem else ""
            raise self.fail(line, f"not valid YAML: {problem}{hint}") from None

    @classmethod
    def load(
        cls, path: str | Path, *, error: type[YamlFileError] = YamlFileError, kind: str = "file"
    ) -> YamlDoc:
        """Read `path` (at most MAX_YAML_BYTES, UTF-8) and parse it; errors name the path and say what
        kind of file it is (`kind`: "policy file")."""
        source = str(path)
        try:
            with Path(path).open("rb") as f:
                data = f.read(MAX_YAML_BYTES + 1)
            if len(data) > MAX_YAML_BYTES:
                raise error(source, 1, f"{kind} is larger than {MAX_YAML_BYTES} bytes")
            text = data.decode("utf-8-sig")
        except OSError as exc:
            raise error(source, 1, f"cannot read {kind}: {exc.strerror or exc}") from None
        except UnicodeDecodeError as exc:
            raise error(source, 1, f"{kind} is not UTF-8: {exc.reason}") from None
        return cls(text, source, error=error, kind=kind)

    def fail(self, at: int | yaml.Node, reason: str) -> YamlFileError:
        """The error to raise for a problem at a line (or a node's line)."""
        return self.error(self.source, at if isinstance(at, int) else line_of(at), reason)

    def value(self, node: yaml.Node) -> Any:
        """The Python value of a node (a scalar, or a whole list or mapping)."""
        try:
            return self._loader.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
            raise self.fail(node, f"cannot read value: {exc}") from None

    def top(self, allowed: Iterable[str], *, name: str, expects: str) -> dict[str, yaml.Node]:
        """The root mapping's entries by key (`name`: what the document is, "policy"); an empty document
        fails at line 1 saying what it `expects`."""
        if self.root is None:
            raise self.fail(1, f"empty {name}: expected a mapping with {expects}")
        return self.mapping(self.root, name, allowed)

    def mapping(
        self,
        node: yaml.Node,
        what: str,
        allowed: Iterable[str] | None = None,
        *,
        noun: str = "key",
        null_ok: bool = False,
    ) -> dict[str, yaml.Node]:
        """A mapping node's entries by (string) key: a duplicate key fails, and so does a key outside
        `allowed` (when given). `null_ok`: an empty value (`tools:`) reads as an empty mapping."""
        if null_ok and isinstance(node, yaml.ScalarNode) and node.tag == _NULL:
            return {}
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        known = tuple(allowed) if allowed is not None else None
        out: dict[str, yaml.Node] = {}
        for key, val in node.value:
            name = self.value(key)
            if known is not None and name not in known:
                raise self.fail(key, f"{what}: unknown {noun} {name!r} (expected: {', '.join(known)})")
            if not isinstance(name, str) or not name:
                raise self.fail(key, f"{what}: {name!r} is not a name (a non-empty string)")
            if name in out:
                raise self.fail(key, f"{what}: duplicate key {name!r}")
            out[name] = val
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        """A sequence node's items."""
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def version(self, top: dict[str, yaml.Node], expected: int = 1) -> None:
        """The file's `version:` is present and is `expected`."""
        if "version" not in top:
            raise self.fail(1, f"missing 'version' (expected {expected})")
        if type(version := self.value(top["version"])) is not int or version != expected:
            raise self.fail(top["version"], f"unsupported version {version!r} (expected {expected})")

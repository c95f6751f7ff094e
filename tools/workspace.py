"""The folder the file tools work in, and how a path maps to a permission resource."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from keel.tools.spec import ToolInputError

__all__ = ["Workspace", "WorkspacePath"]


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkspacePath:
    """A path inside the workspace, resolved for one user."""

    absolute: Path
    relative: str
    """POSIX path relative to the workspace root."""
    resource: str
    """`own:<p>` (the user's home), `home:<user>/<p>`, `shared:<p>` or `workspace:<p>`."""


class Workspace:
    """Files live under `root`: `home/<user>/…` for each user and `shared/…` for everyone.

    Paths given by the model are relative to the root; `~/x` means `home/<user>/x`.
    Anything that escapes the root (absolute paths, `..`, symlinks pointing out) is refused.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def home(self, user_id: str) -> Path:
        """The user's own folder (created on demand)."""
        path = self.root / "home" / user_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def resolve(self, raw: str, user_id: str) -> WorkspacePath:
        """Resolve a model-given path for `user_id`, or raise ToolInputError."""
        text = raw.strip()
        if not text or "\x00" in text:
            raise ToolInputError("path is empty or contains a NUL byte")
        if text == "~" or text.startswith("~/"):
            text = f"home/{user_id}/{text[2:]}".rstrip("/")
        posix = PurePosixPath(text)
        if posix.is_absolute():
            raise ToolInputError(f"path {raw!r} is absolute; paths are relative to the workspace root")
        if ".." in posix.parts:
            raise ToolInputError(f"path {raw!r} leaves the workspace ('..' is not allowed)")
        absolute = (self.root / posix).resolve()
        if absolute != self.root and self.root not in absolute.parents:
            raise ToolInputError(f"path {raw!r} resolves outside the workspace")
        relative = absolute.relative_to(self.root).as_posix() if absolute != self.root else "."
        return WorkspacePath(absolute=absolute, relative=relative, resource=self._resource(relative, user_id))

    @staticmethod
    def _resource(relative: str, user_id: str) -> str:
        parts = relative.split("/")
        if parts[0] == "home" and len(parts) >= 2:
            rest = "/".join(parts[2:])
            return f"own:{rest}" if parts[1] == user_id else f"home:{parts[1]}/{rest}"
        if parts[0] == "shared":
            return "shared:" + "/".join(parts[1:])
        return f"workspace:{relative}"

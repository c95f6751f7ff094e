"""Proof that keel fails closed when the records database goes away mid-run: no tool runs unrecorded."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy.exc

from keel.testing.fake_model import tool_call


# Not save_tool_result: write_file is at-least-once by design (README): its change may land before that row.
@pytest.mark.parametrize(
    "method", ["append_audit_many", "get_tool_result"]
)  # every append goes through the first
async def test_no_tool_runs_when_its_rows_cannot_be_written(
    make_keel, workspace: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    turns = [tool_call("write_file", path="~/note.md", content="written"), "done"]
    async with make_keel(turns) as keel:
        original = getattr(keel.records, method)
        armed = {"on": False}

        async def database_down(*args, **kwargs):
            if armed["on"]:
                raise sqlalchemy.exc.OperationalError("INSERT", {}, ConnectionRefusedError("db down"))
            return await original(*args, **kwargs)

        monkeypatch.setattr(keel.records, method, database_down)
        armed["on"] = True
        try:
            out = await keel.run("write a note", user_id="alice")
        except Exception:  # noqa: BLE001 - failing loudly is failing closed
            out = None
        assert out is None or out.status != "succeeded"
        assert not (workspace / "home/alice/note.md").exists()

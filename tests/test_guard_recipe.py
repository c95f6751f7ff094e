"""The "add a guard" recipe, followed once: a new guard class, its row in the stop-reason table, and
this test. The toy guard stops a run after its first tool step; the run ends with its reason, its words
and its exit code, and the guard only read (no model call was made past it)."""

from __future__ import annotations

from dataclasses import dataclass

from keel.cli._common import exit_code_of
from keel.guards import Guard, NextCall
from keel.stop_reasons import EXIT_TERMINATED, StopReason, register_stop_reason
from keel.testing.fake_model import tool_call

ONE_TOOL_STEP = register_stop_reason(
    StopReason(
        name="one_tool_step",
        outcome="terminated",
        text="I stop after one tool step ({error}). {resume}",
    )
)


@dataclass(frozen=True, slots=True)
class OneToolStep:
    """Stops the run before the model is asked again once a tool has answered."""

    reason: str = ONE_TOOL_STEP.name

    async def check(self, view: NextCall) -> str | None:
        used = view.state.get("tools_used", [])
        return f"{len(used)} tool call ran" if used else None


def test_the_toy_guard_has_the_guard_shape():
    guard: Guard[NextCall] = OneToolStep()
    assert guard.reason in ("one_tool_step",)


async def test_a_guard_added_through_the_public_seam_stops_the_run_with_its_reason(make_keel):
    turns = [tool_call("read_file", "r1", path="shared/handbook.md"), "never reached"]
    async with make_keel(turns, guards=[OneToolStep()]) as keel:
        out = await keel.run("read the handbook", user_id="recipe-user")
        assert (out.status, out.terminated_reason) == ("terminated", "one_tool_step")
        assert out.path[-3:] == ["tool", "fallback", "finalize"]
        assert out.answer.startswith("I stop after one tool step (1 tool call ran).")
        assert f"resume with thread {out.thread_id}" in out.answer
        assert exit_code_of(out.status, out.terminated_reason) == EXIT_TERMINATED
        # plan and the first decide asked the model; the guard stopped the second decide
        assert len(keel.fake_model.calls) == 2
        [record] = await keel.records.list_executions(user_id="recipe-user")
        assert (record.terminated_reason, record.tools_used) == ("one_tool_step", ("read_file",))


async def test_keel_guards_run_first_and_the_added_one_after_them(make_keel):
    turns = [tool_call("read_file", "r1", path="shared/handbook.md"), "never reached"]
    async with make_keel(turns, guards=[OneToolStep()], max_steps=1) as keel:
        out = await keel.run("read the handbook", user_id="recipe-user-2")
        assert out.terminated_reason == "max_steps"  # keel's step limit is checked before the toy guard

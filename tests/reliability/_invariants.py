"""The zero-tolerance checks of a drill, one test each so a report names what broke.

A drill module defines a `drill` fixture returning its `Totals` and imports these names: pytest collects
them in that module, against that module's fixture.
"""

from __future__ import annotations

from _drill import Totals

__all__ = [
    "test_no_effect_done_twice",
    "test_every_tool_result_has_its_effect_and_audit_row",
    "test_ledger_agrees_with_its_entries",
    "test_no_reservation_held_once_every_run_ended",
    "test_ledger_spend_equals_the_recorded_costs",
    "test_no_unhandled_error",
    "test_every_run_ends_and_none_is_left_running",
]


def test_no_effect_done_twice(drill: Totals) -> None:
    assert drill.duplicates == 0, drill.table()


def test_every_tool_result_has_its_effect_and_audit_row(drill: Totals) -> None:
    assert drill.lost_audit_rows == 0, drill.table()


def test_ledger_agrees_with_its_entries(drill: Totals) -> None:
    assert drill.ledger_mismatches == 0, drill.table()


def test_no_reservation_held_once_every_run_ended(drill: Totals) -> None:
    assert drill.reservations_held == 0, drill.table()


def test_ledger_spend_equals_the_recorded_costs(drill: Totals) -> None:
    assert drill.cost_mismatches == 0, drill.table()


def test_no_unhandled_error(drill: Totals) -> None:
    assert drill.unhandled_errors == 0, drill.table()


def test_every_run_ends_and_none_is_left_running(drill: Totals) -> None:
    assert drill.stuck == 0 and drill.left_running == 0, drill.table()

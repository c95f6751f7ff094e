"""The targets table of issue 14 as a RESULTS.md section: one row per target (benchmarks/targets.py), then
each missed target's reason and the summary of its profile, then the recorded files the figures come from.

The reasons live in benchmarks/targets_notes.md, one `## <target id>` heading each, written by whoever
reads the run; the profile summary is the top frames of profile_run's pyinstrument run (postgres or
embedded), or the slowest imports of a cold start.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from benchmarks.targets import FILES, Results, Row, rows

__all__ = ["NOTES", "TITLE", "load", "notes", "section"]

TITLE = "Targets of issue 14 (guards at the cost floor)"
NOTES = Path(__file__).with_name("targets_notes.md")
COLUMNS = ["id", "target", "goal", "measured", "met"]
DESCRIPTION = (
    "One row per target of issue 14, from the recorded files of one `make bench` run (listed under the "
    "table). Ratios are keel / create_agent from one harness process (interleaved rounds); keel checkpoints "
    "with durability `sync` in every row, the `postgres-async` row is the issue's reference. Round trips "
    "per model call and per tool call are counted by `benchmarks/profile_run.py` in the graph node they "
    "happen in (a guard edge counts in the node it leaves): model calls are plan, decide and fallback; tool "
    "calls are permission_check, approval and tool; what recall, finalize and the code around the graph do "
    "is shown as per run and not charged to either. Store errors: keel runs of the concurrency scenario "
    "that did not succeed (the harness itself stops on a run that makes too few model calls). Lock waits: "
    "`pg_stat_activity` (wait_event_type `Lock`) joined with the ungranted `pg_locks` of the replicas' "
    "connections, sampled every 100 ms. Cold start: best wall time of fresh subprocesses."
)


def load(folder: Path) -> Results:
    """The recorded files of one run found in `folder`, by name (missing ones left out)."""
    out = {}
    for name in FILES:
        path = folder / f"{name}.json"
        if path.exists():
            out[name] = json.loads(path.read_text(encoding="utf-8"))
    return out


def notes(path: Path = NOTES) -> dict[str, str]:
    """The reasons written under `## <id>` headings of targets_notes.md, by id (empty ones left out)."""
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    for block in re.split(r"^## ", path.read_text(encoding="utf-8"), flags=re.MULTILINE)[1:]:
        head, _, body = block.partition("\n")
        text = " ".join(re.sub(r"<!--.*?-->", "", body, flags=re.DOTALL).split())
        if text:
            found[head.strip()] = text
    return found


def _met(row: Row) -> str:
    return "not measured" if row.met is None else ("met" if row.met else "**missed**")


PROFILES = {
    "postgres": "postgres (profile_run)",
    "embedded": "embedded (profile_run)",
    "coldstart": "cold start (imports)",
}


def _summary(profile: str, results: Results) -> str:
    if profile == "coldstart":
        imports = results.get("coldstart", {}).get("slowest_imports", [])
        return "slowest imports of `keel run` (cumulative s): " + (
            ", ".join(f"`{i['module']}` {i['cumulative_s']:.2f}" for i in imports) or "not recorded"
        )
    prof = results.get(f"profile-{profile}", {})
    frames = prof.get("top_frames")
    if not frames:
        return f"no {profile} profile recorded"
    parts = [f"{prof['ms_per_run']:.0f} ms a run ({prof['runs']} runs), ms per run"]
    for kind, label in (
        ("keel_innermost", "keel frames by time in them and in the libraries they call"),
        ("own_time", "frames by own time"),
    ):
        listed = ", ".join(f"`{f['frame']}` {f['ms_per_run']:.1f}" for f in frames.get(kind, [])[:6])
        parts.append(f"{label}: {listed}")
    return "; ".join(parts)


def section(results: Results, reasons: dict[str, str], sources: list[str]) -> str:
    """The markdown section: the table, then each missed target's reason and profile summary, then the
    recorded files the figures come from."""
    table = rows(results)
    lines = [
        f"## {TITLE}",
        "",
        DESCRIPTION,
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in table:
        cells = [f"`{row.id}`", row.target, row.goal, row.measured, _met(row)]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    met = sum(row.met is True for row in table)
    lines += ["", f"{met} of {len(table)} targets met."]
    missed = [row for row in table if row.met is False]
    if missed:
        lines += [
            "",
            "Missed targets, each with its reason (benchmarks/targets_notes.md) and its profile:",
            "",
        ]
        for row in missed:
            reason = reasons.get(row.id) or f"not written yet (benchmarks/targets_notes.md, `## {row.id}`)."
            lines.append(f"- `{row.id}`: {reason} Profile: {PROFILES.get(row.profile or '', 'none')}.")
        lines += ["", "The profiles:", ""]
        for profile in dict.fromkeys(row.profile for row in missed if row.profile):
            lines.append(f"- {PROFILES[profile]}: {_summary(profile, results)}.")
    lines += ["", "Figures from: " + ", ".join(f"`{s}`" for s in sources) + "."]
    return "\n".join(lines) + "\n"

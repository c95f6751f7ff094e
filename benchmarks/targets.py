"""The targets of issue 14, each computed from the recorded JSON files of one `make bench` (or
`make bench-quick`) run: its goal, what the run measured, met or not (benchmarks/targets_section.py
renders them). The files, by name:

    peer-postgres.json     ../shared/bench/peer_bench.py --target benchmarks.peer_target:make_postgres
    outcomes-postgres.json keel's runs of that harness run by phase and status (peer_target.OUTCOMES)
    peer-embedded.json     the same harness with --target benchmarks.peer_target:make_embedded
    profile-postgres.json  python -m benchmarks.profile_run --profile postgres --pyinstrument
    profile-embedded.json  the same, --profile embedded
    coldstart.json         python -m benchmarks.coldstart
    replicas.json          python -m benchmarks.replicas

A target whose file is missing (its step failed, or the harness is absent) is "not measured", never met.
Every figure is copied from the files, never typed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["FILES", "Results", "Row", "rows"]

FILES = (
    "peer-postgres",
    "outcomes-postgres",
    "peer-embedded",
    "profile-postgres",
    "profile-embedded",
    "coldstart",
    "replicas",
)
Results = dict[str, dict[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class Row:
    """One target: `met` is None when it was not measured."""

    id: str
    target: str
    goal: str
    measured: str
    met: bool | None
    profile: str | None = None
    """Which profile summary explains a miss: "postgres", "embedded" or "coldstart"."""


def _x(value: float) -> str:
    return f"{value:.2f}×"


def _missing(id: str, target: str, goal: str, why: str) -> Row:
    return Row(id=id, target=target, goal=goal, measured=f"not measured ({why})", met=None)


def _sequential(r: Results) -> list[Row]:
    out = []
    pg = r.get("peer-postgres", {}).get("target_vs_peer", {}).get("sequential", {})
    specs = [
        (
            "postgres-vs-saver",
            "PostgreSQL, sequential, vs create_agent + AsyncPostgresSaver",
            "postgres-async",
            1.5,
        ),
        (
            "postgres-vs-middleware",
            "PostgreSQL, sequential, vs create_agent + middleware + Postgres",
            "mw-postgres",
            0.6,
        ),
    ]
    for id, target, scenario, goal in specs:
        if scenario not in pg:
            out.append(_missing(id, target, f"≤ {goal}×", "no postgres harness run"))
            continue
        ratio = pg[scenario]["median_ratio"]
        measured = (
            f"{_x(ratio)} ({_ms(r['peer-postgres'], scenario)}; p95 ratio {_x(pg[scenario]['p95_ratio'])})"
        )
        if scenario == "postgres-async" and "postgres-sync" in pg:
            measured += f"; {_x(pg['postgres-sync']['median_ratio'])} vs the peer's durability sync"
        out.append(
            Row(
                id=id,
                target=target,
                goal=f"≤ {goal}×",
                measured=measured,
                met=ratio <= goal,
                profile="postgres",
            )
        )
    emb = r.get("peer-embedded", {}).get("target_vs_peer", {}).get("sequential", {})
    target = "Embedded, sequential, vs create_agent + AsyncSqliteSaver"
    if "sqlite" not in emb:
        out.append(_missing("embedded-vs-sqlite", target, "≤ 1.5×", "no embedded harness run"))
    else:
        ratio = emb["sqlite"]["median_ratio"]
        measured = (
            f"{_x(ratio)} ({_ms(r['peer-embedded'], 'sqlite')}; p95 ratio {_x(emb['sqlite']['p95_ratio'])})"
        )
        out.append(
            Row(
                id="embedded-vs-sqlite",
                target=target,
                goal="≤ 1.5×",
                measured=measured,
                met=ratio <= 1.5,
                profile="embedded",
            )
        )
    return out


def _ms(res: dict[str, Any], scenario: str) -> str:
    seq = res["sequential"]
    keel, peer = seq["target"][scenario]["median_ms_per_step"], seq["peer"][scenario]["median_ms_per_step"]
    return f"{keel:.2f} vs {peer:.2f} ms/step"


def _concurrency(r: Results) -> list[Row]:
    res = r.get("peer-postgres", {})
    tvp = res.get("target_vs_peer", {}).get("concurrency", {}).get("postgres-async")
    t1, t2, t3 = (
        "Concurrency (200 × 5, model 20 ms), runs/s vs create_agent + Postgres",
        "Concurrency, p95 run latency vs create_agent + Postgres",
        "Concurrency, store errors",
    )
    if not tvp:
        why = "no concurrency in the postgres harness run"
        return [
            _missing("concurrency-throughput", t1, "≥ 1.2×", why),
            _missing("concurrency-p95", t2, "≤ 2×", why),
            _missing("concurrency-store-errors", t3, "0", why),
        ]
    keel, peer = res["concurrency"]["target"]["postgres-async"], res["concurrency"]["peer"]["postgres-async"]
    size = (
        f"{res['params']['conc_runs']} × {res['params']['conc_steps']}, {res['params']['conc_rounds']} rounds"
    )
    rows = [
        Row(
            id="concurrency-throughput",
            target=t1,
            goal="≥ 1.2×",
            met=tvp["throughput_ratio"] >= 1.2,
            measured=f"{tvp['throughput_ratio']:.3f}× ({keel['runs_per_s_median']:.1f} vs "
            f"{peer['runs_per_s_median']:.1f} runs/s; {size})",
            profile="postgres",
        ),
        Row(
            id="concurrency-p95",
            target=t2,
            goal="≤ 2×",
            met=tvp["p95_latency_ratio"] <= 2,
            measured=f"{tvp['p95_latency_ratio']:.2f}× ({keel['p95_run_latency_ms'] / 1000:.2f} vs "
            f"{peer['p95_run_latency_ms'] / 1000:.2f} s)",
            profile="postgres",
        ),
    ]
    outcomes = r.get("outcomes-postgres")
    if outcomes is None:
        rows.append(_missing("concurrency-store-errors", t3, "0", "keel's run outcomes were not recorded"))
        return rows
    conc = {k.split(" ", 1)[1]: n for k, n in outcomes.items() if k.startswith("concurrency ")}
    errors = sum(n for status, n in conc.items() if status != "succeeded")
    shown = ", ".join(f"{n} {status}" for status, n in sorted(conc.items())) or "no run seen"
    rows.append(
        Row(
            id="concurrency-store-errors",
            target=t3,
            goal="0",
            measured=f"{errors} ({shown})",
            met=errors == 0 and bool(conc),
            profile="postgres",
        )
    )
    return rows


PER_CALL = [
    ("model-call-records", "Per model call: records transactions", "records transactions", "per_model_call"),
    ("model-call-redis", "Per model call: Redis round trips", "redis round trips", "per_model_call"),
    (
        "tool-call-records",
        "Per tool call: records transactions (result, audit, settlement)",
        "records transactions",
        "per_tool_call",
    ),
    ("tool-call-redis", "Per tool call: Redis round trips", "redis round trips", "per_tool_call"),
]


def _per_call(r: Results) -> list[Row]:
    out = []
    for id, target, what, where in PER_CALL:
        profiles = ["postgres"] if what.startswith("redis") else ["postgres", "embedded"]
        found = {p: r[f"profile-{p}"]["by_step"].get(what, {}) for p in profiles if f"profile-{p}" in r}
        if not found:
            out.append(_missing(id, target, "≤ 1", "no profile_run"))
            continue
        worst = max(split.get(where, 0.0) for split in found.values())
        measured = "; ".join(
            f"{p} {split.get(where, 0.0):g} (+{split.get('rest_per_run', 0.0):g} per run outside model and "
            "tool steps)"
            for p, split in found.items()
        )
        missing = [p for p in profiles if p not in found]
        met = worst <= 1 and not missing
        if missing:
            measured += f"; {', '.join(missing)} not measured"
        profile = max(found, key=lambda p: found[p].get(where, 0.0))
        out.append(Row(id=id, target=target, goal="≤ 1", measured=measured, met=met, profile=profile))
    return out


def _checkpoints(r: Results) -> list[Row]:
    parts, met = [], True
    runs = (("postgres", "peer-postgres", "postgres-async"), ("embedded", "peer-embedded", "sqlite"))
    for label, name, scenario in runs:
        seq = r.get(name, {}).get("sequential", {})
        if scenario not in seq.get("target", {}):
            parts.append(f"{label} not measured")
            met = False
            continue
        keel, peer = (
            seq["target"][scenario]["checkpoints_per_run"],
            seq["peer"][scenario]["checkpoints_per_run"],
        )
        parts.append(f"{label} {keel} vs {peer}")
        met = met and keel <= peer + 2
    target = "Checkpoints per run vs the peer's"
    if all(p.endswith("not measured") for p in parts):
        return [_missing("checkpoints", target, "≤ peer + 2", "no harness run")]
    return [
        Row(
            id="checkpoints",
            target=target,
            goal="≤ peer + 2",
            measured="; ".join(parts),
            met=met,
            profile="postgres",
        )
    ]


def _locks(r: Results) -> list[Row]:
    target = "No lock shared by all runs (lock waits while replicas run)"
    rep = r.get("replicas")
    if not rep:
        return [_missing("no-global-lock", target, "0 samples waiting", "no replicas run")]
    waiting = sum(p["lock_wait_samples"] for p in rep["phases"])
    samples = sum(p["lock_samples"] for p in rep["phases"])
    on: dict[str, int] = {}
    for phase in rep["phases"]:
        for what, n in phase["lock_waits_on"].items():
            on[what] = on.get(what, 0) + n
    top = "; ".join(f"{what}: {n}" for what, n in sorted(on.items(), key=lambda kv: -kv[1])[:3])
    measured = f"{waiting} of {samples} samples saw a wait" + (f" (waiters seen on {top})" if top else "")
    return [
        Row(
            id="no-global-lock",
            target=target,
            goal="0 samples waiting",
            measured=measured,
            met=waiting == 0,
            profile="postgres",
        )
    ]


def _coldstart(r: Results) -> list[Row]:
    cold = r.get("coldstart")
    out = []
    for id, name, goal in (("cold-help", "keel --help", 0.4), ("cold-run", "keel run (offline)", 1.5)):
        target = f"Cold start: `{name}` (best of {cold['repeat'] if cold else '?'} subprocess wall times)"
        if not cold or name not in cold:
            out.append(_missing(id, target, f"≤ {goal} s", "no coldstart run"))
            continue
        best = cold[name]["best_s"]
        measured = f"{best:.2f} s (all: {', '.join(f'{w:.2f}' for w in cold[name]['walls_s'])})"
        out.append(
            Row(
                id=id,
                target=target,
                goal=f"≤ {goal} s",
                measured=measured,
                met=best <= goal,
                profile="coldstart",
            )
        )
    return out


def _replicas(r: Results) -> list[Row]:
    target = "Replicas: 2 worker processes vs 1, one PostgreSQL and Redis"
    rep = r.get("replicas")
    if not rep:
        return [_missing("replicas", target, "throughput grows (≥ 1.2×)", "no replicas run")]
    one, two = rep["phases"]
    params = rep["params"]
    measured = (
        f"{rep['throughput_ratio_2_vs_1']:.2f}× ({one['runs_per_s']:.1f} → {two['runs_per_s']:.1f} runs/s; "
        f"p95 {one['p95_ms'] / 1000:.2f} → {two['p95_ms'] / 1000:.2f} s; worker CPU s "
        f"{'+'.join(f'{c:.1f}' for c in one['cpu_s_per_worker'])} → "
        f"{'+'.join(f'{c:.1f}' for c in two['cpu_s_per_worker'])}; machine CPU busy "
        f"{one['machine_cpu_busy']:.0%} → {two['machine_cpu_busy']:.0%}; {params['runs']} runs, "
        f"{params['inflight_per_worker']} in flight per worker)"
    )
    return [
        Row(
            id="replicas",
            target=target,
            goal="throughput grows (≥ 1.2×)",
            measured=measured,
            met=rep["throughput_ratio_2_vs_1"] >= 1.2,
            profile="postgres",
        )
    ]


SECTIONS: list[Callable[[Results], list[Row]]] = [
    _sequential,
    _concurrency,
    _per_call,
    _checkpoints,
    _locks,
    _coldstart,
    _replicas,
]


def rows(results: Results) -> list[Row]:
    """Every target of the issue, in its order, computed from the recorded files."""
    return [row for make in SECTIONS for row in make(results)]

"""A project with two agent versions and a rollout between them, for the rollout tests.

Version A (`keel.yaml`) lets users look orders up; version B (`keel.b.yaml`, a new prompt and a new policy)
forgot the rule: every lookup a user's run tries on B is refused, so B's runs fail (`tools_refused`) and its
guard rails stop it. Both run on keel's offline scripted model.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from keel.settings import shipped_file

__all__ = ["RolloutProject", "TASK"]

TASK = "lookup_order order_id=1001"

_CONFIG = """\
agent: {{name: desk, version: {label}, prompt: {prompt}}}
model: scripted:keel-scripted
tools:
  - import: {module}:lookup_order
    effect: read
    resource: "order:{{order_id}}"
policy: {policy}
prices: prices.yaml
limits: limits.yaml
"""

_TOOL = '''\
def lookup_order(order_id: int) -> str:
    """Look up an order by its number."""
    return f"order {order_id}: 2 chairs, shipped"
'''

_POLICY = """\
version: 1
roles: [admin, user]
approvers: [admin]
rules:
  - {{role: admin, tool: "*", resource: "*", effect: allow}}
{user_rule}
"""

ROLLOUT = """\
version: 1
name: {name}
stable: a
arms:
  a: {{config: keel.yaml, weight: {wa}}}
  b: {{config: keel.b.yaml, weight: {wb}}}
allow:
  b: [{allowed}]
guard_rails:
  window: 1h
  min_runs: {min_runs}
  min_success_rate: 0.5
  check_every_s: {every}
"""


class RolloutProject:
    """The folder: tools, two configs, two policies, a rollout file (`write_rollout` rewrites it)."""

    def __init__(self, root: Path, *, canaries: int = 3) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        tag = uuid.uuid4().hex[:6]
        module = f"rollout_tools_{tag}"
        (root / f"{module}.py").write_text(_TOOL, encoding="utf-8")
        # Tagged: each project's versions are its own (tests share a records database; a version's id is
        # its content's hash, and a guard rail judges an arm's runs of its version).
        (root / "prompt.md").write_text(f"You help with orders ({tag}).\n", encoding="utf-8")
        (root / "prompt_b.md").write_text(f"You help with orders ({tag}). Be brief.\n", encoding="utf-8")
        allow = '  - {role: user, tool: lookup_order, resource: "order:*", effect: allow}'
        (root / "policy.yaml").write_text(_POLICY.format(user_rule=allow), encoding="utf-8")
        (root / "policy_b.yaml").write_text(_POLICY.format(user_rule=""), encoding="utf-8")
        for name in ("prices", "limits"):
            (root / f"{name}.yaml").write_text(shipped_file(f"{name}.yaml").read_text(), encoding="utf-8")
        for file, label, prompt, policy in (
            ("keel.yaml", "v1", "prompt.md", "policy.yaml"),
            ("keel.b.yaml", "v2", "prompt_b.md", "policy_b.yaml"),
        ):
            text = _CONFIG.format(label=label, prompt=prompt, policy=policy, module=module)
            (root / file).write_text(text, encoding="utf-8")
        self.name = f"desk-{tag}"
        """The rollout's name (one per project: tests share a records database)."""
        self.canaries = [f"canary-{tag}-{i}" for i in range(canaries)]
        """Users on B's allow-list."""
        self.write_rollout()

    @property
    def config(self) -> Path:
        return self.root / "keel.yaml"

    @property
    def rollout(self) -> Path:
        return self.root / "rollout.yaml"

    def write_rollout(self, *, wa: float = 90, wb: float = 10, min_runs: int = 3, every: float = 0) -> None:
        text = ROLLOUT.format(
            name=self.name, wa=wa, wb=wb, allowed=", ".join(self.canaries), min_runs=min_runs, every=every
        )
        self.rollout.write_text(text, encoding="utf-8")

"""The application layer: what composes keel's lower layers into something that runs.

- `keel.app.backends`: the composition root (`Backends.from_settings`, `open_checkpointer`);
- `keel.app.service`: the `Keel` facade (run, resume, decide) the CLI, notebooks and library users drive;
- `keel.app.server_backends`: the one `Backends` of a LangGraph Server process (built and migrated off-loop);
- `keel.app.server_graph`: `make_graph`, the graph `langgraph.json` names, always durable ("sync");
- `keel.app.demo`: the offline demo behind `keel demo`;
- `keel.app.factory`: `create_guarded_agent` and `guarded_tool`, keel inside the caller's own LangGraph app;
- `keel.app.guarded_agent`: the compiled graph the factory returns (identity default, durability, `aclose`).

Faces (keel.cli, keel.server) import from here; nothing below (graph, nodes, tools, runtime) does.
"""

__all__: list[str] = []

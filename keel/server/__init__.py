"""keel on LangGraph Server: API-key auth, run identity and the custom HTTP routes (see langgraph.json)."""

__all__: list[str] = []

"""The support desk example's own code: its ticket database (db.py) and its tools (tools.py)."""

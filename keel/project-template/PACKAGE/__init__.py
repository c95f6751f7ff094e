"""This agent's own tools (keel.yaml imports them by path: `module:function`)."""

"""The operators' web console: one static page over a small FastAPI app (``medcard console``)."""

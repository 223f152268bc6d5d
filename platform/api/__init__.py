"""The HTTP API (FastAPI), DESIGN §8."""

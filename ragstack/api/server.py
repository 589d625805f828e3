"""``uvicorn ragstack.api.server:app``: the API on the settings from the environment."""

from ragstack.api.app import create_app
from ragstack.app import build

app = create_app(build())

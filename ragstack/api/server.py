"""``uvicorn ragstack.api.server:app``: the API on the settings from the environment (logs
through ``ragstack.logs``, at RAGSTACK_LOG_LEVEL, default info, in RAGSTACK_LOG_FORMAT)."""

from ragstack import logs
from ragstack.api.app import create_app
from ragstack.app import build
from ragstack.config import Settings

settings = Settings()
logs.configure(settings.log_level or "info", settings.log_format)
app = create_app(build(settings))

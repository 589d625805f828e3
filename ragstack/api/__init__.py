"""The REST API (``ragstack serve``): thin FastAPI routes over the service layer."""

from ragstack.api.app import create_app

__all__ = ["create_app"]

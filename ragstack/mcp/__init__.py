"""The MCP (Model Context Protocol) front door: ``search``, ``ask``, ``list_collections`` and
``get_document`` for agents, over stdio (``ragstack mcp``) and streamable HTTP (``/mcp`` under
the API). ``tools`` holds the tools over the service; ``server`` the SDK and the transports."""

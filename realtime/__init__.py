"""Adapters: the WebSocket protocol core, the local server, the Lambda handlers and the CLI."""

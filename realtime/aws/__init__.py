"""The Lambda handlers: the native API Gateway WebSocket handler, the HTTP handler (the app behind Mangum)."""

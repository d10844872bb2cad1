"""The local server: the FastAPI app, ``/predict``, the WebSocket connection, the batcher and workers."""

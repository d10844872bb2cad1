"""mnist-live core: MNIST-faithful preprocessing and ONNX inference.

Pure and small on purpose: no FastAPI, boto3 or websockets imports. Every entry point (WebSocket frame,
HTTP POST, Lambda event, CLI, model training and evaluation) calls :func:`shared.preprocess.preprocess`
and :class:`shared.inference.Predictor`.
"""

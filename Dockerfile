# mnist-live Lambda image: one image, two handlers (infra/template.yaml picks one per function with
# ImageConfig.Command). Default: the API Gateway WebSocket handler. Runtime dependencies only (no torch,
# uvicorn or test tools); the model is baked in. Build: docker build --platform linux/amd64 -t mnist-live .
# Size and measurements: infra/README.md.
FROM public.ecr.aws/lambda/python:3.12

# Dependencies first (cached layer). Then drop what Lambda never runs: onnxruntime's offline tooling,
# test suites.
COPY requirements-lambda.txt ${LAMBDA_TASK_ROOT}/
RUN pip install --no-cache-dir --target "${LAMBDA_TASK_ROOT}" -r "${LAMBDA_TASK_ROOT}/requirements-lambda.txt" \
 && rm -rf "${LAMBDA_TASK_ROOT}/onnxruntime/tools" "${LAMBDA_TASK_ROOT}/onnxruntime/transformers" \
           "${LAMBDA_TASK_ROOT}/onnxruntime/quantization" "${LAMBDA_TASK_ROOT}/onnxruntime/datasets" \
 && find "${LAMBDA_TASK_ROOT}" -depth -type d -name tests -exec rm -rf {} + \
 && rm "${LAMBDA_TASK_ROOT}/requirements-lambda.txt"

# The models (image frames, strokes frames), the core and the adapters, and the page (the FastAPI app mounts site/ at /; S3 serves it too).
COPY model/mnist_cnn.onnx model/strokes_cnn.onnx ${LAMBDA_TASK_ROOT}/model/
COPY site/ ${LAMBDA_TASK_ROOT}/site/
COPY shared/ ${LAMBDA_TASK_ROOT}/shared/
COPY realtime/ ${LAMBDA_TASK_ROOT}/realtime/

# Compile bytecode at build time (/var/task is read-only at run time) and check both entry points import.
RUN python -m compileall -q "${LAMBDA_TASK_ROOT}/shared" "${LAMBDA_TASK_ROOT}/realtime" \
 && cd "${LAMBDA_TASK_ROOT}" && python -c "import realtime.aws.websocket_handler, realtime.aws.http_handler"

# PYDANTIC_DISABLE_PLUGINS: we use no pydantic plugins; skips scanning every installed package's
# entry points when the first model class is built (tens of ms of each cold start).
ENV MNIST_LIVE_MODEL_PATH=/var/task/model/mnist_cnn.onnx \
    MNIST_LIVE_STROKES_MODEL_PATH=/var/task/model/strokes_cnn.onnx \
    MNIST_LIVE_INTRA_OP_NUM_THREADS=1 \
    PYDANTIC_DISABLE_PLUGINS=__all__

CMD ["realtime.aws.websocket_handler.handler"]

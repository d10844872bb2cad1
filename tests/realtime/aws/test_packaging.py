"""What CI checks about the deployment: the SAM template (cfn-lint and structure), the workflows (GitHub's
schema), the image (Dockerfile, runtime requirements) and the WebSocket path's imports (cold start)."""

from __future__ import annotations

import asyncio
import base64
import importlib
import json
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from cfnlint.api import lint_file
from cfnlint.decode import decode_str

from realtime.aws.lambda_types import ROUTES, TWO_WAY_ROUTES
from shared.inference import Predictor
from shared.inks import render_png
from shared.number import read_number
from shared.preprocess import StrokesFrame
from shared.settings import REPO_ROOT, Settings
from tests.realtime.aws.conftest import load_event

TEMPLATE = REPO_ROOT / "infra" / "template.yaml"
WORKFLOWS = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "mangum",
    "anyio",
    "httpx",
    "websockets",
    "boto3",
    "botocore",
    "pydantic",
    "pydantic_core",
    "pydantic_settings",
)
"""Packages the WebSocket handler's import closure must not hold (cold start)."""


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout, check=False)


def template() -> dict[str, Any]:
    decoded, matches = decode_str(TEMPLATE.read_text())
    assert not matches and decoded is not None
    return dict(decoded)


def test_websocket_entrypoint_imports_no_web_framework_boto3_or_pydantic() -> None:
    """Cold start: answering a MESSAGE imports no FastAPI, starlette, uvicorn, boto3, botocore or pydantic."""
    event = json.dumps(load_event("ws_message_predict"))
    code = f"""
import json, sys
from realtime.aws.websocket_handler import handler
result = handler(json.loads({event!r}))
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))
frame = json.loads(result["body"])
print(json.dumps({{"status": result["statusCode"], "type": frame["type"], "heavy": heavy}}))
"""
    done = run(sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"status": 200, "type": "prediction", "heavy": []}


def test_the_import_check_sees_a_heavy_import() -> None:
    """The check above can fail: the HTTP entry point's closure holds FastAPI, starlette and pydantic."""
    code = f"""
import json, sys
import realtime.server.app
print(json.dumps(sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))))
"""
    done = run(sys.executable, "-c", code)
    assert done.returncode == 0, done.stderr
    assert {"fastapi", "starlette", "pydantic"} <= set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_cfn_lint_is_clean() -> None:
    """``cfn-lint infra/template.yaml`` (all rules, SAM-aware), through its Python API."""
    assert lint_file(TEMPLATE) == []


def test_cfn_lint_catches_the_globals_gotcha(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = TEMPLATE.read_text().replace("    Timeout: 29\n", "    Timeout: 29\n    PackageType: Image\n", 1)
    bad.write_text(text)
    assert [m.rule.id for m in lint_file(bad)] == ["E3724"]


def test_template_declares_the_websocket_api() -> None:
    t = template()
    res = t["Resources"]
    assert "PackageType" not in t["Globals"]["Function"], "not allowed in Globals (SAM E0001)"
    (api,) = [r for r in res.values() if r["Type"] == "AWS::ApiGatewayV2::Api"]
    assert api["Properties"]["ProtocolType"] == "WEBSOCKET"
    assert api["Properties"]["RouteSelectionExpression"] == "$request.body.action"
    routes = {r["Properties"]["RouteKey"] for r in res.values() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    assert routes == set(ROUTES)
    (stage,) = [r for r in res.values() if r["Type"] == "AWS::ApiGatewayV2::Stage"]
    assert stage["Properties"]["AutoDeploy"] is True
    assert {"ThrottlingRateLimit", "ThrottlingBurstLimit"} <= set(stage["Properties"]["DefaultRouteSettings"])
    (permission,) = [r for r in res.values() if r["Type"] == "AWS::Lambda::Permission"]
    assert permission["Properties"]["Principal"] == "apigateway.amazonaws.com"
    assert {"ImageUri", "StageName", "MemorySize", "IntraOpThreads", "AuthToken", "SiteOrigin"} <= set(
        t["Parameters"]
    )
    assert t["Parameters"]["AuthToken"]["NoEcho"] is True
    assert {"WebSocketUrl", "HttpUrl", "SiteBucketName"} <= set(t["Outputs"])
    assert any(r["Type"] == "AWS::S3::Bucket" for r in res.values())


def test_template_functions_use_one_image_and_real_handlers() -> None:
    res = template()["Resources"]
    functions = {k: r["Properties"] for k, r in res.items() if r["Type"] == "AWS::Serverless::Function"}
    commands = set()
    for props in functions.values():
        assert props["PackageType"] == "Image" and props["ImageUri"] == {"Ref": "ImageUri"}
        (command,) = props["ImageConfig"]["Command"]
        commands.add(command)
        module, _, attr = command.rpartition(".")
        assert module in ("realtime.aws.websocket_handler", "realtime.aws.http_handler")
        if module == "realtime.aws.websocket_handler":  # http_handler loads the model: checked below
            assert callable(getattr(importlib.import_module(module), attr))
    assert commands == {"realtime.aws.websocket_handler.handler", "realtime.aws.http_handler.handler"}
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert 'CMD ["realtime.aws.websocket_handler.handler"]' in dockerfile


def test_message_routes_are_two_way_and_the_others_one_way() -> None:
    """``predict``, ``ping`` and ``$default`` return the Lambda's body to the client (a route response);
    ``$connect`` and ``$disconnect`` do not."""
    res = template()["Resources"]
    routes = {k: r["Properties"] for k, r in res.items() if r["Type"] == "AWS::ApiGatewayV2::Route"}
    responses = [r["Properties"] for r in res.values() if r["Type"] == "AWS::ApiGatewayV2::RouteResponse"]
    answered = {}
    for response in responses:
        (route_id,) = [k for k in routes if response["RouteId"] == {"Ref": k}]
        assert response["RouteResponseKey"] == "$default", "WebSocket APIs support only $default"
        assert response["ApiId"] == routes[route_id]["ApiId"] == {"Ref": "WebSocketApi"}
        answered[routes[route_id]["RouteKey"]] = route_id
    assert set(answered) == TWO_WAY_ROUTES == {"predict", "ping", "$default"}
    assert len(responses) == len(answered), "one route response per two-way route"
    for name, props in routes.items():
        two_way = props["RouteKey"] in TWO_WAY_ROUTES
        assert (props.get("RouteResponseSelectionExpression") == "$default") is two_way, name


def test_the_websocket_function_cannot_push() -> None:
    """Replies are route responses: no ManageConnections permission, no callback URL."""
    ws = template()["Resources"]["WebSocketFunction"]["Properties"]
    assert "Policies" not in ws
    text = TEMPLATE.read_text()
    assert "ManageConnections" not in text.replace("# No execute-api:ManageConnections", "")
    assert "MNIST_LIVE_CALLBACK_URL" not in text


def test_http_endpoint_cors_is_limited_to_the_site() -> None:
    http = template()["Resources"]["HttpFunction"]["Properties"]["FunctionUrlConfig"]
    origins = http["Cors"]["AllowOrigins"]
    assert "*" not in json.dumps(origins)
    assert json.dumps(origins).count("SiteOrigin") == 2, "the SiteOrigin parameter, or the bucket's website"


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda p: p.name)
def test_workflow_matches_githubs_schema(workflow: Path) -> None:
    done = run(
        sys.executable,
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.github-workflows",
        str(workflow.relative_to(REPO_ROOT)),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_workflows_do_what_they_say() -> None:
    names = {p.name for p in WORKFLOWS}
    assert names >= {"ci.yml", "deploy.yml"}
    ci = (REPO_ROOT / ".github/workflows/ci.yml").read_text()
    assert "bash scripts/test" in ci
    deploy = (REPO_ROOT / ".github/workflows/deploy.yml").read_text()
    assert "id-token: write" in deploy and "role-to-assume" in deploy, "OIDC, no stored keys"
    assert "aws-access-key-id" not in deploy
    for step in ("docker push", "sam deploy", "aws s3 sync site/"):
        assert step in deploy


def test_image_has_runtime_dependencies_only() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") == 1 and "FROM public.ecr.aws/lambda/python:3.12" in dockerfile
    assert "COPY model/mnist_cnn.onnx model/strokes_cnn.onnx " in dockerfile
    assert "MNIST_LIVE_STROKES_MODEL_PATH=/var/task/model/strokes_cnn.onnx" in dockerfile
    lines = [
        ln.strip()
        for ln in (REPO_ROOT / "requirements-lambda.txt").read_text().splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    pins = dict(ln.split("==") for ln in lines)
    assert all(re.fullmatch(r"[\d.]+", v) for v in pins.values()), "every requirement is pinned"
    assert {
        "numpy",
        "onnxruntime",
        "pillow",
        "pyspng",
        "msgspec",
        "pydantic",
        "mangum",
        "fastapi",
    } <= set(pins)
    assert int(pins["numpy"].split(".")[0]) < 2
    # numba: the numpy kernels serve Lambda, where its import would add about 1 s to every cold start
    # boto3: replies are route responses, nothing calls post_to_connection; pydantic-settings: its import
    # alone cost a quarter of the WebSocket cold start (shared/settings.py reads the environment itself)
    unwanted = {"torch", "uvicorn", "pytest", "websockets", "httpx", "moto", "rich", "onnx", "numba", "boto3"}
    unwanted |= {"pydantic-settings"}
    assert not unwanted & set(pins)
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[1] == "*" or "*" in ignore, "deny by default"


def test_http_handler_answers_payload_2_events() -> None:
    """The Mangum handler on the recorded Function URL event, in a worker thread.

    Mangum creates and keeps an event loop per thread (as on Lambda, where the process lives on); the
    thread closes it afterwards so it is not garbage-collected unclosed during a later test.
    """
    event = load_event("http_v2_predict")
    health = {**event, "rawPath": "/healthz", "body": None}
    http = {**event["requestContext"]["http"], "method": "GET", "path": "/healthz"}
    health["requestContext"] = {**event["requestContext"], "http": http}

    def call() -> list[dict[str, Any]]:
        from realtime.aws import http_handler

        try:
            return [http_handler.handler(e, None) for e in (event, health)]
        finally:
            asyncio.get_event_loop().close()
            asyncio.set_event_loop(None)

    with ThreadPoolExecutor(1) as pool:
        predicted, healthz = pool.submit(call).result(timeout=60)
    assert predicted["statusCode"] == 200, predicted
    body = json.loads(predicted["body"])
    assert body["status"] == "ok" and 0 <= body["digit"] <= 9
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-9)
    assert healthz["statusCode"] == 200


def test_http_handler_enforces_the_bearer_token(predictor: Predictor) -> None:
    """The Lambda HTTP path checks ``Authorization: Bearer`` exactly as the local server does."""
    from realtime.aws.http_handler import build_handler

    event = load_event("http_v2_predict")

    def with_auth(value: str | None) -> dict[str, Any]:
        headers = {k: v for k, v in event["headers"].items() if k.lower() != "authorization"}
        if value is not None:
            headers["authorization"] = value
        return {**event, "headers": headers}

    def call() -> list[dict[str, Any]]:
        handler = build_handler(Settings(auth_token="s3cret"), predictor)  # type: ignore[arg-type]
        try:
            return [handler(with_auth(v), None) for v in (None, "Bearer wrong", "Bearer s3cret")]
        finally:
            asyncio.get_event_loop().close()
            asyncio.set_event_loop(None)

    with ThreadPoolExecutor(1) as pool:
        missing, wrong, right = pool.submit(call).result(timeout=60)
    for refused in (missing, wrong):
        assert refused["statusCode"] == 401
        assert json.loads(refused["body"])["error"]["code"] == "unauthorized"
    assert right["statusCode"] == 200
    assert json.loads(right["body"])["status"] == "ok"


NUMBER_STROKES = [[[40, 60], [40, 150], [120, 150]], [[100, 60], [100, 220]], [[240, 60], [240, 220]]]
"""A two-stroke 4 (its open top, then its stem) and a 1."""


def test_the_http_lambda_reads_numbers_from_json_and_images(predictor: Predictor) -> None:
    """The Function URL handler (Mangum over the same app) in number mode: JSON ``mode``, and
    ``?mode=number`` with an image body. After the tests above: the module is imported in a thread."""
    from realtime.aws.http_handler import build_handler

    event = load_event("http_v2_predict")
    body = json.dumps({"mode": "number", "strokes": NUMBER_STROKES, "width": 320, "height": 280})
    as_json = {**event, "body": body, "headers": {**event["headers"], "content-length": str(len(body))}}
    png = render_png(NUMBER_STROKES, 320, 280)
    image_headers = {**event["headers"], "content-type": "image/png", "content-length": str(len(png))}
    as_image = {
        **event,
        "rawQueryString": "mode=number",
        "headers": image_headers,
        "body": base64.b64encode(png).decode(),
        "isBase64Encoded": True,
    }

    def call() -> list[dict[str, Any]]:
        handler = build_handler(Settings(), predictor)
        try:
            return [handler(e, None) for e in (as_json, as_image)]
        finally:
            asyncio.get_event_loop().close()
            asyncio.set_event_loop(None)

    with ThreadPoolExecutor(1) as pool:
        replies = pool.submit(call).result(timeout=60)
    want = read_number(predictor, StrokesFrame(NUMBER_STROKES, 320, 280))
    for reply, strokes in zip(replies, ([[0, 1], [2]], [None, None]), strict=True):
        assert reply["statusCode"] == 200, reply
        answer = json.loads(reply["body"])
        assert answer["mode"] == "number" and answer["number"] == want.number
        assert [d["strokes"] for d in answer["digits"]] == strokes

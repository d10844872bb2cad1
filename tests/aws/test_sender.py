"""Sending through boto3 ``post_to_connection``, stubbed with botocore's ``Stubber``: Gone, throttling,
other errors, and the bounded retry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import ANY, Stubber

from realtime.aws_lambda import (
    Boto3Sender,
    ConnectionGone,
    RetryPolicy,
    SendFailed,
    SendThrottled,
    WebSocketHandler,
    deliver,
)
from shared.inference import Predictor
from shared.settings import Settings
from tests.aws.conftest import Sleeps, message_event
from tests.logs import Records

CID = "XaVSDeXSDoECF1g="
ENDPOINT = "https://abcd123456.execute-api.eu-west-1.amazonaws.com/prod"
PREDICT = json.dumps(
    {"action": "predict", "seq": 1, "strokes": [[[140, 40], [140, 240]]], "width": 280, "height": 280}
)


@pytest.fixture(scope="module")
def client() -> Any:
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="eu-west-1"
    )
    sender = Boto3Sender.for_endpoint(ENDPOINT, session)
    return sender.client


@pytest.fixture
def stub(client: Any) -> Iterator[Stubber]:
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def post_ok(stub: Stubber) -> None:
    stub.add_response("post_to_connection", {}, {"ConnectionId": CID, "Data": ANY})


def post_error(stub: Stubber, code: str, status: int) -> None:
    stub.add_client_error(
        "post_to_connection",
        service_error_code=code,
        http_status_code=status,
        expected_params={"ConnectionId": CID, "Data": ANY},
    )


def test_the_client_targets_the_callback_url(client: Any) -> None:
    assert client.meta.endpoint_url == ENDPOINT
    assert client.meta.config.retries["total_max_attempts"] == 1, "botocore does not retry on its own"


@pytest.mark.parametrize(
    ("code", "status", "error"),
    [
        ("GoneException", 410, ConnectionGone),
        ("TooManyRequestsException", 429, SendThrottled),
        ("LimitExceededException", 429, SendThrottled),
        ("ForbiddenException", 403, SendFailed),
        ("PayloadTooLargeException", 413, SendFailed),
        ("InternalServerError", 500, SendFailed),
    ],
)
def test_boto3_errors_are_translated(
    client: Any, stub: Stubber, code: str, status: int, error: type[Exception]
) -> None:
    post_error(stub, code, status)
    with pytest.raises(error) as info:
        Boto3Sender(client).post(CID, b"{}")
    assert info.value.__cause__ is not None, "chained to the botocore error"


def test_gone_is_logged_at_info_and_not_retried(
    client: Any, stub: Stubber, sleeps: Sleeps, records: Records
) -> None:
    post_error(stub, "GoneException", 410)
    assert deliver(Boto3Sender(client), CID, b"{}", sleep=sleeps, log_extra={"request_id": "r1"}) is False
    assert sleeps == []
    (gone,) = records.events("ws_gone")
    assert gone.levelname == "INFO" and gone.connection_id == CID and gone.request_id == "r1"  # type: ignore[attr-defined]


def test_throttling_is_retried_with_backoff(client: Any, stub: Stubber, sleeps: Sleeps) -> None:
    post_error(stub, "TooManyRequestsException", 429)
    post_error(stub, "LimitExceededException", 429)
    post_ok(stub)
    assert deliver(Boto3Sender(client), CID, b"{}", sleep=sleeps) is True
    assert len(sleeps) == 2
    assert 0.025 <= sleeps[0] < 0.05 and 0.1 <= sleeps[1] < 0.2, sleeps


def test_throttling_gives_up_after_three_tries(
    client: Any, stub: Stubber, sleeps: Sleeps, records: Records
) -> None:
    for _ in range(3):
        post_error(stub, "TooManyRequestsException", 429)
    assert deliver(Boto3Sender(client), CID, b"{}", sleep=sleeps) is False
    assert len(sleeps) == 2
    (gave_up,) = records.events("ws_send_throttled")
    assert gave_up.levelname == "WARNING" and gave_up.attempts == 3  # type: ignore[attr-defined]


def test_other_errors_are_logged_with_ids_and_not_retried(
    client: Any, stub: Stubber, sleeps: Sleeps, records: Records
) -> None:
    post_error(stub, "ForbiddenException", 403)
    assert deliver(Boto3Sender(client), CID, b"{}", sleep=sleeps, log_extra={"request_id": "r2"}) is False
    assert sleeps == []
    (failed,) = records.events("ws_send_failed")
    assert failed.levelname == "ERROR"
    assert (failed.connection_id, failed.request_id, failed.reason) == (CID, "r2", "ForbiddenException")  # type: ignore[attr-defined]


@pytest.mark.parametrize("retry", [1, 2, 3, 4])
@pytest.mark.parametrize("rand", [0.0, 0.5, 0.999])
def test_retry_delays_are_bounded(retry: int, rand: float) -> None:
    delay = RetryPolicy().delay(retry, rand)
    assert 0.025 <= delay < 0.2


def test_handler_over_boto3_gone_then_throttled_then_ok(
    client: Any, stub: Stubber, predictor: Predictor, sleeps: Sleeps, records: Records
) -> None:
    handler = WebSocketHandler(Settings(), predictor, Boto3Sender(client), sleep=sleeps)
    post_error(stub, "GoneException", 410)
    assert handler(message_event(PREDICT, "predict")) == {"statusCode": 200}
    post_error(stub, "TooManyRequestsException", 429)
    post_ok(stub)
    assert handler(message_event(PREDICT, "predict")) == {"statusCode": 200}
    post_error(stub, "InternalServerErrorException", 500)
    assert handler(message_event(PREDICT, "predict")) == {"statusCode": 200}, "the handler never raises"
    assert len(records.events("ws_gone")) == 1 and len(sleeps) == 1
    (failed,) = records.events("ws_send_failed")
    assert failed.request_id == "XaVUGGEnDoEFeJw=" and failed.connection_id == CID  # type: ignore[attr-defined]

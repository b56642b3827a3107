"""Which exceptions mean "AWS did not answer" (503) and which are bugs (500): raw botocore errors."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, ConnectTimeoutError, EndpointConnectionError, ReadTimeoutError

from chalicelib.aws_outages import is_aws_outage


class WrappingError(Exception):
    """Like pynamodb's errors: the botocore error kept as ``cause``, not raised from."""

    def __init__(self, cause: Exception) -> None:
        super().__init__("Failed to get item")
        self.cause = cause


def client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}}, "GetItem")


@pytest.mark.parametrize("error", [
    EndpointConnectionError(endpoint_url="http://127.0.0.1:1/"),
    ConnectTimeoutError(endpoint_url="http://127.0.0.1:1/"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:1/"),
    client_error("ProvisionedThroughputExceededException"),
    client_error("ThrottlingException"),
    client_error("InternalServerError"),
])
def test_transport_failures_and_not_now_answers_are_outages_wrapped_or_not(error):
    assert is_aws_outage(error)
    assert is_aws_outage(WrappingError(error))
    try:
        try:
            raise error
        except Exception as inner:
            raise RuntimeError("while storing") from inner
    except RuntimeError as outer:
        assert is_aws_outage(outer)


@pytest.mark.parametrize("error", [
    client_error("ConditionalCheckFailedException"),
    client_error("ValidationException"),
    client_error("ResourceNotFoundException"),
    KeyError("bug"),
    WrappingError(ValueError("bug")),
])
def test_refusals_and_bugs_are_not_outages(error):
    assert not is_aws_outage(error)

"""Make AWS misbehave on cue, at botocore's edge (below our code, where AWS itself would fail)."""

from contextlib import contextmanager
from unittest.mock import patch

from botocore.client import BaseClient
from botocore.exceptions import ClientError


def client_error(code: str, message: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, operation)


@contextmanager
def aws_fault(operation: str, exception: BaseException, *, times: int = 1, after_call: bool = False, when=None):
    """Raise `exception` on the next `times` calls of `operation` (matching `when(params)`).
    With after_call, AWS does the work first and the answer is lost, as on a dropped connection."""
    original = BaseClient._make_api_call
    remaining = {"count": times}

    def faulty(self, operation_name, api_params):
        if operation_name == operation and remaining["count"] and (when is None or when(api_params)):
            remaining["count"] -= 1
            if after_call:
                original(self, operation_name, api_params)
            raise exception
        return original(self, operation_name, api_params)

    with patch.object(BaseClient, "_make_api_call", faulty):
        yield

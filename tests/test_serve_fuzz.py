"""schemathesis against the API's own OpenAPI document: generated requests (valid and not)
to every operation, with a write token; no answer may be a 5xx, and every answer must match
the document (status code, content type, headers, body schema). A bounded number of
requests runs here; ``scripts/serve-fuzz`` runs 1,000 and more against a live server."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from twin.serve import ServeConfig, auth, create_app  # noqa: E402

_TMP = Path(tempfile.mkdtemp(prefix="twin-serve-fuzz-"))  # the app exists at collection
_TOKENS = _TMP / "tokens.json"
_TOKEN, _ = auth.create(_TOKENS, "write")
_APP = create_app(ServeConfig(db=f"sqlite:///{_TMP / 'twin.db'}", tokens=_TOKENS, rate=0))
schema = schemathesis.openapi.from_asgi("/openapi.json", _APP)

CHECKS: Any = (
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
)
EXAMPLES = int(os.environ.get("TWIN_FUZZ_EXAMPLES", "5"))
"""Generated requests per operation (12 operations)."""


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
def test_no_generated_request_gets_a_5xx_or_an_answer_outside_the_document(case: Any) -> None:
    case.headers = {**(case.headers or {}), "Authorization": f"Bearer {_TOKEN}"}
    case.call_and_validate(checks=CHECKS)

"""One free authenticated call that shows whether a key can use the music API.

Used by ``reelscore doctor --online``: the composition-plan endpoint costs nothing (ElevenLabs
``POST /v1/music/plan``; the proxy's ``POST /eleven/plan`` answers with a task id and is not
polled), and a key without music access is refused there with the same 401/402/403 answers
that a generation would get, mapped to the same messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from reelscore.errors import ServiceError
from reelscore.providers.base import ProviderConfig
from reelscore.providers.client import make_client, read_limited, transport_error_text
from reelscore.providers.options import HttpOptions
from reelscore.providers.redact import Redactor, url_for_log
from reelscore.providers.service_errors import error_from_response, parse_error_body


def check_json_call(config: ProviderConfig, options: HttpOptions, url: str,
                    body: Mapping[str, Any], *, headers: Mapping[str, str], service: str,
                    key_source: str, redactor: Redactor,
                    transport: httpx.BaseTransport | None = None) -> httpx.Response:
    """POST *body* once (no retries: this is a check); the mapped error unless it is a 2xx."""
    with make_client(config, options, headers=headers, transport=transport) as client:
        try:
            resp = client.post(url, json=dict(body))
        except httpx.HTTPError as exc:
            raise ServiceError(f"{service} at {url_for_log(url)} could not be reached: "
                               f"{redactor.text(transport_error_text(exc))}",
                               hint="check --base-url and the network", retryable=True) from None
        if 200 <= resp.status_code < 300:
            return resp
        info = parse_error_body(resp.status_code, read_limited(resp),
                                resp.headers.get("content-type", ""))
        raise error_from_response(info, service=service, key_source=key_source,
                                  redactor=redactor)

"""The free plan endpoints (``--draft-plan``): one call, retried, and the answer read as a plan.

ElevenLabs ``POST /v1/music/plan`` answers the plan itself (reference/music_api.md §5); the proxy's
``POST /eleven/plan`` answers a task whose ``result`` holds it (``compositionPlan``,
``composition_plan`` or ``plan``, or the plan itself: the proxy passes the provider's payload
through and does not document its shape). The call costs nothing, so every failure that may be
transient (a dropped connection, a 429, any 5xx) is retried under the provider's retry policy:
there is nothing to pay twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import httpx
from pydantic import ValidationError

from reelscore.errors import ServiceError
from reelscore.musicplan import CompositionPlan, MusicPrompt, Plan
from reelscore.providers.base import ProviderConfig
from reelscore.providers.client import make_client, transport_error_text
from reelscore.providers.options import HttpOptions
from reelscore.providers.redact import Emitter
from reelscore.providers.retry import Retrier, RetryPolicy
from reelscore.providers.service_errors import (
    SAFE_CONNECT,
    classify_retry,
    error_from_response,
    parse_error_body,
    retry_after_seconds,
)

_PLAN_KEYS = ("compositionPlan", "composition_plan", "plan")


def post_free_json(config: ProviderConfig, options: HttpOptions, url: str, body: Mapping[str, Any],
                   *, headers: Mapping[str, str], service: str, key_source: str, emit: Emitter,
                   provider: str, request_id: str, transport: httpx.BaseTransport | None,
                   sleep: Callable[[float], None]) -> Any:
    """POST *body* to a free endpoint; the JSON answer, or the mapped error after retries."""
    retrier = Retrier(RetryPolicy.from_options(config.max_retries, options), emit,
                      provider=provider, request_id=request_id, sleep=sleep)
    red = emit.redactor
    with make_client(config, options, headers=headers, transport=transport) as client:
        while True:
            rec = retrier.attempt(method="POST", url=url, purpose="draft plan")
            try:
                resp = client.post(url, json=dict(body))
            except httpx.TransportError as exc:
                rec.error = red.text(transport_error_text(exc))
                if retrier.again(rec, SAFE_CONNECT):
                    continue
                retrier.report(rec)
                raise ServiceError(f"{service} at {url} could not be reached for --draft-plan "
                                   f"({rec.error}; {rec.attempt} attempts)",
                                   hint="check the network and --base-url", retryable=True) from None
            rec.headers_received()
            rec.finish()
            rec.status = resp.status_code
            rec.response_bytes = len(resp.content)
            rec.capture_ids(resp.headers)
            if 200 <= resp.status_code < 300:
                retrier.report(rec)
                try:
                    return resp.json()
                except ValueError:
                    raise ServiceError(f"{service} answered the plan request with a body that is "
                                       "not JSON", hint="check --base-url") from None
            info = parse_error_body(resp.status_code, resp.content,
                                    resp.headers.get("content-type", ""))
            rec.error, rec.error_code = red.text(info.summary()), info.code
            ra = retry_after_seconds(resp.headers)
            if retrier.again(rec, classify_retry(info, idempotent=True),
                             ra if ra is not None else info.retry_after_s):
                continue
            retrier.report(rec)
            raise error_from_response(info, service=service, key_source=key_source,
                                      body_sent=False, redactor=red)


def read_drafted_plan(doc: Any, *, service: str) -> Plan:
    """The plan in a plan endpoint's answer (a MusicPrompt or a CompositionPlan, by shape)."""
    if isinstance(doc, Mapping):
        for key in _PLAN_KEYS:
            if isinstance(doc.get(key), Mapping):
                doc = doc[key]
                break
    if not isinstance(doc, Mapping) or not ({"sections", "chunks"} & set(doc)):
        raise ServiceError(f"{service} answered the plan request without a plan "
                           f"(keys: {', '.join(sorted(doc)) if isinstance(doc, Mapping) else type(doc).__name__})",
                           hint="drop --draft-plan and run again; the cut's own plan is used then")
    kind: type[MusicPrompt] | type[CompositionPlan] = MusicPrompt if "sections" in doc else CompositionPlan
    try:
        return kind.model_validate(dict(doc))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ServiceError(f"{service} drafted a plan reelscore cannot read ({where}: {first['msg']})",
                           hint="drop --draft-plan and run again; the cut's own plan is used then") from None

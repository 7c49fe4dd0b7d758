"""The draft step (``--draft-plan``): the cut's plans -> the free plan endpoint -> drafted styles.

For every request of a composition built from the cut, the plan is written out as a brief
(``reelscore.draft.draft_prompt``) and sent with the request's length and model to the provider's
free plan endpoint (``Provider.draft_plan``); the draft is laid on the cut's plan
(``reelscore.draft.apply_draft``: the cut's names and durations, the draft's styles by time
overlap) and the result is checked against the service's limits before anything is composed.

Drafts are kept in the job folder (``composition.drafted.json``: per request the brief, the cut's
plan it was drafted for and the draft as the service answered it). A later run of the same job
whose cut plan and brief are unchanged reuses the stored draft instead of asking again: a fresh
draft would change the plan, and with it the request's key, and a finished request would be
composed (and paid for) again.

Refusals, before anything is sent or rendered: ``--draft-plan`` without ``--method compose``,
with a reviewed ``--composition`` file (it is used as it is), or with a provider that has no
plan endpoint (``--provider local``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from reelscore.compose import CompositionFile, check_limits
from reelscore.draft import apply_draft, draft_length_ms, draft_prompt
from reelscore.errors import InputError, UnsupportedError
from reelscore.fsutil import atomic_write_text
from reelscore.musicplan import PlanField, plan_wire
from reelscore.providers import DraftRequest, Provider
from reelscore.providers.base import EventSink, ignore_event
from reelscore.settings import ScoreSettings

DRAFTS_FILE = "composition.drafted.json"


class StoredDraft(BaseModel):
    model_config = ConfigDict(extra="forbid")

    request_id: str
    model_id: str
    prompt: str
    music_length_ms: int
    cut_plan: PlanField  # the plan built from the cut that the brief described
    draft: PlanField  # as the service answered it


class DraftsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schema_version: Literal["reelscore.drafts/1"] = "reelscore.drafts/1"
    provider: str
    requests: list[StoredDraft]


def _needs_endpoint(provider: Provider) -> None:
    if not provider.drafts_plans:
        raise UnsupportedError(
            f"--draft-plan needs a service's free plan endpoint; the {provider.name} provider "
            "has none (nothing was rendered or sent)",
            hint="drop --draft-plan, or use --provider elevenlabs or mountsea")


def check_draft_settings(settings: ScoreSettings, provider: Provider | None = None) -> None:
    """Refuse ``--draft-plan`` where it cannot apply (before any rendering or request)."""
    if not settings.draft_plan:
        return
    if provider is not None:
        _needs_endpoint(provider)
    if settings.method != "compose":
        raise InputError("--draft-plan drafts a composition plan, which only --method compose "
                         "sends", hint="add --method compose, or drop --draft-plan")
    if settings.composition is not None:
        raise InputError(f"--draft-plan drafts a plan from the cut, but --composition "
                         f"{settings.composition} gives a reviewed plan to use as it is",
                         hint="drop one of them (to redraft, run `reelscore plan EDIT "
                              "--composition FILE --draft-plan` and review FILE)")


def read_drafts(path: Path) -> DraftsFile | None:
    """The drafts an earlier run stored, or None (missing or unreadable: they are redrafted)."""
    try:
        return DraftsFile.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValidationError):
        return None


def draft_composition(file: CompositionFile, provider: Provider, *,
                      stored: DraftsFile | None = None, drop_frame: bool = False,
                      on_event: EventSink = ignore_event) -> tuple[CompositionFile, DraftsFile, int]:
    """*file* with every request's styles drafted; the drafts; how many were reused."""
    _needs_endpoint(provider)
    earlier = {d.request_id: d for d in stored.requests} if stored and stored.provider == provider.name else {}
    kept: list[StoredDraft] = []
    requests = []
    reused = 0
    for req in file.requests:
        prompt, length = draft_prompt(req, file, drop_frame=drop_frame), draft_length_ms(req)
        old = earlier.get(req.id)
        if (old is not None and old.prompt == prompt and old.model_id == req.model_id
                and old.music_length_ms == length
                and plan_wire(old.cut_plan) == plan_wire(req.composition_plan)):
            draft = old.draft
            reused += 1
        else:
            draft = provider.draft_plan(DraftRequest(
                request_id=req.id, prompt=prompt, music_length_ms=length, model_id=req.model_id,
                source_plan=req.composition_plan), on_event=on_event)
        kept.append(StoredDraft(request_id=req.id, model_id=req.model_id, prompt=prompt,
                                music_length_ms=length, cut_plan=req.composition_plan, draft=draft))
        requests.append(req.model_copy(update={
            "composition_plan": apply_draft(req.composition_plan, draft)}))
    out = file.model_copy(update={
        "requests": requests,
        "notes": [*file.notes, f"styles drafted by {provider.name}'s plan endpoint; names and "
                               "durations from the cut"]})
    check_limits(out)
    return out, DraftsFile(provider=provider.name, requests=kept), reused


def write_drafts(path: Path, drafts: DraftsFile) -> None:
    atomic_write_text(path, drafts.model_dump_json(indent=2, exclude_none=True) + "\n")

"""Strict validation of ``POST /v1/music`` (compose) for the contract server.

Written from shared/reference/music_api.md §4, independently of reelscore's own models, so a test
through it shows that what reelscore sends is what the service takes:

* JSON body; ``composition_plan`` (this server composes from plans only: ``prompt`` is refused),
  ``model_id``, ``respect_sections_durations``, ``seed``, ``store_for_inpainting``,
  ``sign_with_c2pa``; anything else is ``extra_forbidden``. Query: ``output_format``,
  ``enable_logging``.
* ``music_v1`` takes a ``MusicPrompt`` (``positive_global_styles``, ``negative_global_styles``,
  ``sections``; each section ``section_name`` 1–100 characters, local styles, ``duration_ms``,
  ``lines``); ``music_v2``/``music_v2_5`` take a ``CompositionPlan`` (``chunks``, each ``text``,
  ``duration_ms``, ``positive_styles``, optional ``negative_styles``). Unknown fields refused.
* Every section 3000–120000 ms, the plan at most 600000 ms; at most 30 lyric lines of at most
  200 characters.

Errors are FastAPI's ``detail`` list (422). ``section_durations`` gives the accepted durations.
"""

from __future__ import annotations

from typing import Any

MODELS = ("music_v1", "music_v2", "music_v2_5")
BODY = {"composition_plan", "model_id", "respect_sections_durations", "seed",
        "store_for_inpainting", "sign_with_c2pa"}
V1_PLAN = {"positive_global_styles", "negative_global_styles", "sections"}
V1_SECTION = {"section_name", "positive_local_styles", "negative_local_styles", "duration_ms",
              "lines"}
V2_CHUNK = {"text", "duration_ms", "positive_styles", "negative_styles", "context_adherence",
            "condition_strength"}


def _err(loc: list[Any], msg: str, typ: str = "value_error", inp: Any = None) -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": typ, "input": inp}


def _strings(value: Any, loc: list[Any], errors: list[dict[str, Any]]) -> None:
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        errors.append(_err(loc, "Input should be a valid list of strings", "list_type", value))


def _fields(doc: Any, allowed: set[str], required: set[str], loc: list[Any],
            errors: list[dict[str, Any]]) -> bool:
    if not isinstance(doc, dict):
        errors.append(_err(loc, "Input should be a valid dictionary", "dict_type", doc))
        return False
    errors += [_err([*loc, k], "Extra inputs are not permitted", "extra_forbidden", doc[k])
               for k in sorted(set(doc) - allowed)]
    errors += [_err([*loc, k], "Field required", "missing") for k in sorted(required - set(doc))]
    return True


def _duration(value: Any, loc: list[Any], errors: list[dict[str, Any]]) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        errors.append(_err(loc, "Input should be a valid integer", "int_type", value))
        return 0
    if not 3000 <= value <= 120000:
        errors.append(_err(loc, "duration_ms must be between 3000 and 120000", "value_error", value))
    return value


def _lines(lines: list[str], loc: list[Any], errors: list[dict[str, Any]]) -> None:
    if len(lines) > 30:
        errors.append(_err(loc, "at most 30 lines", "value_error", len(lines)))
    errors += [_err(loc, "a line has at most 200 characters", "value_error", line)
               for line in lines if len(line) > 200]


def validate(doc: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """The 422 errors of a ``POST /v1/music`` body, and the section durations (ms)."""
    errors: list[dict[str, Any]] = []
    if not _fields(doc, BODY, {"composition_plan"}, [], errors):
        return errors, []
    model = doc.get("model_id", "music_v1")
    if model not in MODELS:
        errors.append(_err(["model_id"], f"Input should be one of {', '.join(MODELS)}", "enum", model))
    for k in ("respect_sections_durations", "store_for_inpainting", "sign_with_c2pa"):
        if k in doc and not isinstance(doc[k], bool):
            errors.append(_err([k], "Input should be a valid boolean", "bool_type", doc[k]))
    if "seed" in doc and (not isinstance(doc["seed"], int) or isinstance(doc["seed"], bool)):
        errors.append(_err(["seed"], "Input should be a valid integer", "int_type", doc["seed"]))
    plan = doc.get("composition_plan")
    durations: list[int] = []
    if model == "music_v1":
        if isinstance(plan, dict) and "chunks" in plan:
            errors.append(_err(["composition_plan"], "music_v1 takes a MusicPrompt (sections), "
                               "not a CompositionPlan", "value_error", None))
            return errors, []
        if not _fields(plan, V1_PLAN, V1_PLAN, ["composition_plan"], errors):
            return errors, []
        for k in ("positive_global_styles", "negative_global_styles"):
            _strings(plan.get(k, []), ["composition_plan", k], errors)
        for i, sec in enumerate(plan.get("sections") or []):
            loc = ["composition_plan", "sections", i]
            if not _fields(sec, V1_SECTION, V1_SECTION, loc, errors):
                continue
            name = sec.get("section_name")
            if not isinstance(name, str) or not 1 <= len(name) <= 100:
                errors.append(_err([*loc, "section_name"], "1-100 characters", "value_error", name))
            for k in ("positive_local_styles", "negative_local_styles", "lines"):
                _strings(sec.get(k, []), [*loc, k], errors)
            _lines(sec.get("lines") or [], [*loc, "lines"], errors)
            durations.append(_duration(sec.get("duration_ms"), [*loc, "duration_ms"], errors))
    else:
        if isinstance(plan, dict) and "sections" in plan:
            errors.append(_err(["composition_plan"], f"{model} takes a CompositionPlan (chunks), "
                               "not a MusicPrompt", "value_error", None))
            return errors, []
        if not _fields(plan, {"chunks"}, {"chunks"}, ["composition_plan"], errors):
            return errors, []
        for i, chunk in enumerate(plan.get("chunks") or []):
            loc = ["composition_plan", "chunks", i]
            if not _fields(chunk, V2_CHUNK, {"text", "duration_ms", "positive_styles"}, loc, errors):
                continue
            if not isinstance(chunk.get("text"), str):
                errors.append(_err([*loc, "text"], "Input should be a valid string", "string_type"))
            else:
                _lines(chunk["text"].splitlines()[1:], [*loc, "text"], errors)
            for k in ("positive_styles", "negative_styles"):
                _strings(chunk.get(k, []), [*loc, k], errors)
            durations.append(_duration(chunk.get("duration_ms"), [*loc, "duration_ms"], errors))
    if not durations and not errors:
        errors.append(_err(["composition_plan"], "the plan has no sections"))
    if sum(durations) > 600000:
        errors.append(_err(["composition_plan"], "a plan lasts at most 600000 ms", "value_error",
                           sum(durations)))
    return errors, durations


def without_styles(plan: Any, refused: list[str]) -> Any:
    """*plan* with every style that names one of *refused* left out: what the copyright filter
    suggests instead of a plan it refuses (``bad_composition_plan``)."""
    if isinstance(plan, dict):
        return {k: ([s for s in v if not any(r.casefold() in str(s).casefold() for r in refused)]
                    if k.endswith("styles") and isinstance(v, list) else without_styles(v, refused))
                for k, v in plan.items()}
    if isinstance(plan, list):
        return [without_styles(v, refused) for v in plan]
    return plan


def names_refused(plan: Any, refused: list[str]) -> bool:
    return without_styles(plan, refused) != plan

"""``reelscore batch ... --openjd job.yaml``: the batch as an Open Job Description job template.

Three steps, each a parameter space with one task per edit, each depending on the one before:

- ``Render``: ``reelscore batch EDIT -o OUTDIR --stop-after render`` (no key needed);
- ``Generate``: ``... --stop-after generate`` (the answers are stored in the job folder);
- ``Finish``: ``...`` (conform, loudness, write-back, reports; a finished edit is skipped).

Every task resumes from the edit's job folder, so the folders must be on storage every worker
sees (``OutDir``). Paths are job or task parameters of type PATH, so a farm's path mapping rules
apply to them. The template holds no secret: the workers find the provider key in their own
environment, credentials file or keyring. With a jobs file, the task parameter is the edit's name
in the batch (``--only NAME``) and the file is the ``JobsFile`` parameter.

The template is written as JSON, which is also valid YAML (``job.yaml`` or ``job.json``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reelscore.batch_jobs import BatchItem
from reelscore.fsutil import atomic_write_text
from reelscore.settings import FrontEndValues, label

SPEC = "jobtemplate-2023-09"
STEPS = (("Render", "render"), ("Generate", "generate"), ("Finish", None))
# Options that are plain flags (no --no-... form).
_PLAIN_FLAGS = {"resubmit"}


def flags_of(values: FrontEndValues) -> list[str]:
    """The batch's own front-end values as ``reelscore`` flags, for every task to repeat."""
    args: list[str] = []
    for key, value in values.model_dump(exclude_unset=True, exclude_none=True).items():
        flag = label("flag", key)
        if isinstance(value, bool):
            if value:
                args.append(flag)
            elif key not in _PLAIN_FLAGS:
                args.append("--no-" + flag[2:])
        elif isinstance(value, list):
            for v in value:
                args += [flag, str(v)]
        else:
            args += [flag, str(value)]
    return args


def job_template(items: Sequence[BatchItem], outdir: Path, values: FrontEndValues, *,
                 jobs: Path | None, config: Path | None, profile: str | None, force: bool,
                 template_dir: Path) -> dict[str, Any]:
    """The job template (a JSON-able dict) for *items* written under *outdir*. The defaults of
    path parameters are relative to *template_dir* (OpenJD joins them to the template's folder)."""

    def default(path: Path) -> str:
        return os.path.relpath(path, template_dir)

    params: list[dict[str, Any]] = [
        {"name": "OutDir", "type": "PATH", "objectType": "DIRECTORY", "dataFlow": "OUT",
         "default": default(outdir), "description": "output folder: scored edits and job folders"},
        {"name": "ReelscoreCommand", "type": "STRING", "default": "reelscore",
         "description": "the reelscore executable on the workers"},
    ]
    shared = ["-o", "{{Param.OutDir}}", *flags_of(values)]
    if config is not None:
        params.append({"name": "Config", "type": "PATH", "objectType": "FILE",
                       "dataFlow": "IN", "default": default(config)})
        shared += ["--config", "{{Param.Config}}"]
    if profile is not None:
        shared += ["--profile", profile]
    if force:
        shared.append("--force")
    if jobs is not None:
        params.append({"name": "JobsFile", "type": "PATH", "objectType": "FILE",
                       "dataFlow": "IN", "default": default(jobs)})
        task = {"name": "Edit", "type": "STRING", "range": [i.name for i in items]}
        select = ["--jobs", "{{Param.JobsFile}}", "--only", "{{Task.Param.Edit}}"]
    else:
        task = {"name": "Edit", "type": "PATH", "range": [str(i.edit) for i in items]}
        select = ["{{Task.Param.Edit}}"]
    steps = []
    previous: str | None = None
    for name, stage in STEPS:
        args = ["batch", *select, *shared, "--workers", "1"]
        if stage is not None:
            args += ["--stop-after", stage]
        step: dict[str, Any] = {
            "name": name,
            "parameterSpace": {"taskParameterDefinitions": [task]},
            "script": {"actions": {"onRun": {"command": "{{Param.ReelscoreCommand}}",
                                             "args": args}}},
        }
        if previous is not None:
            step["dependencies"] = [{"dependsOn": previous}]
        steps.append(step)
        previous = name
    return {"specificationVersion": SPEC,
            "name": f"reelscore batch ({len(items)} edit{'s' if len(items) != 1 else ''})",
            "parameterDefinitions": params, "steps": steps}


def write_template(path: Path, template: dict[str, Any]) -> None:
    """Write *template* atomically (JSON: valid YAML too)."""
    atomic_write_text(path, json.dumps(template, indent=2) + "\n")

"""``reelscore doctor``: what this machine and this configuration can do, checked before a job.

Each check is one ``Check`` record: a name, a status, one line of detail and, when it failed, what
to do. A check marked ``required`` is one the chosen provider needs: the command exits non-zero
when any of those failed, so a site can run ``reelscore doctor`` before a batch. Nothing here
prints or returns a secret: keys are reported by where they were found, never by value.

Checks, in order:

ffmpeg      path, version, and the encoders reelscore uses (libx264, aac, pcm_s24le)
keys        each service's key: found or not, and where from (env var, credentials file, keyring)
online      (``--online``) one free authenticated call per chosen service: the composition-plan
            endpoint, which answers 402/403 when the key has no music access
uploader    (proxy route) a write / read / delete round trip of a tiny object in the bucket
otio        the OTIO plugin is listed by OTIO (hook ``reelscore_score``, linker ``reelscore_relink``)
resolve     the scripting module is found; with ``--resolve`` a connection and whether it is Studio
config      the effective configuration, each value with the file it came from (secrets redacted)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from reelscore.config import EffectiveConfig
    from reelscore.providers import ProviderConfig

CheckStatus = Literal["ok", "warn", "fail", "skip"]

# Encoders a run uses: H.264 proxies, AAC for clips with sound, 24-bit PCM for the score.
REQUIRED_ENCODERS = ("libx264", "aac", "pcm_s24le")
KEYED_PROVIDERS = ("elevenlabs", "mountsea")


@dataclass(frozen=True)
class Check:
    """One line of the doctor's table."""

    group: str
    name: str
    status: CheckStatus
    detail: str
    fix: str = ""
    required: bool = False  # the chosen provider needs this to pass


@dataclass(frozen=True)
class ConfigValue:
    """One effective setting and where it came from (a file path, "default" or "flag")."""

    key: str
    value: str
    source: str


@dataclass
class DoctorReport:
    provider: str
    checks: list[Check] = field(default_factory=list)
    config: list[ConfigValue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(c.required and c.status == "fail" for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {"provider": self.provider, "ok": self.ok,
                "checks": [asdict(c) for c in self.checks],
                "config": [asdict(v) for v in self.config]}


# ------------------------------------------------------------------------------------ checks


def check_ffmpeg() -> list[Check]:
    from reelscore.errors import ReelscoreError
    from reelscore.ffmpeg_cli import capture, ffmpeg_exe

    try:
        exe = ffmpeg_exe()
        version = capture([exe, "-hide_banner", "-version"], "read the ffmpeg version")
        encoders = capture([exe, "-hide_banner", "-encoders"], "list the ffmpeg encoders")
    except ReelscoreError as exc:
        return [Check("ffmpeg", "ffmpeg", "fail", exc.message.splitlines()[0],
                      fix=exc.hint or "pip install imageio-ffmpeg, or set REELSCORE_FFMPEG",
                      required=True)]
    # "ffmpeg version n9.0.2-17-g2a571b6068-20260930 Copyright ..." -> "n9.0.2-17-g2a571b6068-..."
    words = version.split()
    release = words[2] if len(words) > 2 and words[:2] == ["ffmpeg", "version"] else "?"
    found = set(re.findall(r"^\s*[VAS][.\w]{5}\s+(\S+)", encoders, flags=re.MULTILINE))
    missing = [e for e in REQUIRED_ENCODERS if e not in found]
    return [
        Check("ffmpeg", "ffmpeg", "ok", f"version {release} at {exe}", required=True),
        Check("ffmpeg", "encoders", "fail" if missing else "ok",
              ("missing: " + ", ".join(missing)) if missing else ", ".join(REQUIRED_ENCODERS),
              fix="use an ffmpeg built with these encoders (REELSCORE_FFMPEG=/path/to/ffmpeg)"
              if missing else "", required=True),
    ]


def check_keys(provider: str) -> list[Check]:
    from reelscore.errors import ReelscoreError
    from reelscore.providers.secrets import ENV_VARS, KEYRING_SERVICE, credentials_path, find_secret

    checks = []
    for name in KEYED_PROVIDERS:
        needed = name == provider
        try:
            found = find_secret(name)
        except ReelscoreError as exc:  # e.g. a credentials file others can read
            checks.append(Check("keys", name, "fail", exc.message.splitlines()[0],
                                fix=exc.hint or "", required=needed))
            continue
        if found is not None:
            checks.append(Check("keys", name, "ok", f"key found in {found[1]}", required=needed))
            continue
        env = ENV_VARS.get(name, ("THE_KEY",))[0]
        checks.append(Check(
            "keys", name, "fail" if needed else "skip", "no key",
            fix=f"export {env}=..., or [{name}] api_key in {credentials_path()} (chmod 600), "
            f"or `keyring set {KEYRING_SERVICE} {name}`", required=needed))
    return checks


def check_otio_plugin() -> Check:
    import opentimelineio as otio

    manifest = otio.plugins.ActiveManifest()
    hooks = {h.name for h in manifest.hook_scripts}
    linkers = {m.name for m in manifest.media_linkers}
    wired = "reelscore_score" in manifest.hooks.get("pre_adapter_write", [])
    if "reelscore_score" in hooks and "reelscore_relink" in linkers and wired:
        return Check("otio", "plugin", "ok", "hook reelscore_score (pre_adapter_write), "
                     "media linker reelscore_relink")
    return Check("otio", "plugin", "fail", "the reelscore OTIO plugin is not listed by OTIO",
                 fix="reinstall reelscore in this environment (pip install reelscore); "
                 "`otiopluginfo` must list reelscore")


def check_resolve(*, connect: bool,
                  find_module: Callable[[], Any] | None = None,
                  connector: Callable[[], Any] | None = None) -> list[Check]:
    from reelscore.errors import ReelscoreError
    from reelscore.resolve.connect import connect as connect_resolve
    from reelscore.resolve.connect import find_script_module

    found = (find_module or find_script_module)()
    if found.module is None:
        return [Check("resolve", "scripting module", "skip",
                      "DaVinciResolveScript not found (" + "; ".join(found.tried[-2:]) + ")",
                      fix="install DaVinci Resolve, or use the OTIO route (export OTIO, "
                      "reelscore score, import)")]
    checks = [Check("resolve", "scripting module", "ok", found.source)]
    if not connect:
        return checks
    try:
        session = (connector or (lambda: connect_resolve(find_module=lambda: found)))()
    except ReelscoreError as exc:
        checks.append(Check("resolve", "connection", "fail", exc.message.splitlines()[0],
                            fix=exc.hint or ""))
        return checks
    checks.append(Check("resolve", "connection", "ok" if session.is_studio else "warn",
                        session.describe(),
                        fix="" if session.is_studio else "external scripting needs DaVinci "
                        "Resolve Studio; use the Scripts menu or the OTIO route"))
    return checks


def check_online(provider: str, config: ProviderConfig) -> Check:
    """The chosen provider's free authenticated call (``--online``)."""
    from reelscore.errors import ReelscoreError
    from reelscore.providers import make_provider

    try:
        answer = make_provider(provider, config).check_access()
    except ReelscoreError as exc:
        return Check("online", provider, "fail", exc.message.splitlines()[0], fix=exc.hint or "",
                     required=True)
    return Check("online", provider, "ok", answer, required=True)


def check_uploader(provider: str, options: Mapping[str, Any]) -> Check:
    """A write / read / delete round trip in the configured bucket (the proxy route needs it)."""
    from reelscore.errors import ReelscoreError
    from reelscore.providers.options import UploaderConfig
    from reelscore.providers.redact import Redactor
    from reelscore.providers.uploader import round_trip

    needed = provider == "mountsea"
    raw = options.get("uploader")
    if raw is None:
        return Check("uploader", "s3", "fail" if needed else "skip", "no [uploader] configured",
                     fix='add [uploader] type = "s3", bucket = "..." to reelscore.toml '
                     "(credentials from the AWS chain)" if needed else "", required=needed)
    try:
        config = raw if isinstance(raw, UploaderConfig) else UploaderConfig.model_validate(raw)
        detail = round_trip(config, redactor=Redactor())
    except ReelscoreError as exc:
        return Check("uploader", "s3", "fail", exc.message.splitlines()[0], fix=exc.hint or "",
                     required=needed)
    return Check("uploader", "s3", "ok", detail, required=needed)


def config_values(config: EffectiveConfig) -> list[ConfigValue]:
    """Every value the configuration files set, with its file (keys never live there)."""
    values, sources = config.values(), config.sources
    return [ConfigValue(key, _shown(values[key]), sources.get(key, "default"))
            for key in sorted(values)]


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def run_doctor(config: EffectiveConfig, provider: str, provider_config: ProviderConfig, *,
               online: bool = False, resolve: bool = False) -> DoctorReport:
    """Every check, in the order of the module docstring."""
    from reelscore.providers.options import HttpOptions

    opts = provider_config.options
    options = opts.model_dump(exclude_none=True) if isinstance(opts, HttpOptions) else dict(opts)
    report = DoctorReport(provider)
    report.checks += check_ffmpeg()
    report.checks += check_keys(provider)
    if online and provider != "local":
        report.checks.append(check_online(provider, provider_config))
    report.checks.append(check_uploader(provider, options))
    report.checks.append(check_otio_plugin())
    report.checks += check_resolve(connect=resolve)
    report.config = config_values(config)
    return report


def render_table(report: DoctorReport) -> Sequence[tuple[str, str, str, str]]:
    """Rows (check, status, detail, fix) for a table, in order."""
    return [(f"{c.group}: {c.name}", c.status + (" (needed)" if c.required else ""), c.detail,
             c.fix) for c in report.checks]

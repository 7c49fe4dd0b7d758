"""reelscore's OTIO hook script: score the timeline about to be written.

Attached to ``pre_adapter_write``. Active only when the hook argument map holds ``reelscore.*``
keys (``otioconvert -i cut.xml -o scored.otio -H reelscore.provider=local``); otherwise it returns
its input, the very same object, without importing anything. Keys: see ``reelscore.hook.HOOK_KEYS``.
"""

PREFIX = "reelscore."


def hook_function(in_timeline, argument_map=None):
    """Return *in_timeline* scored (a copy with a Score track), or unchanged without arguments."""
    if not argument_map or not any(
        isinstance(key, str) and key.startswith(PREFIX) for key in argument_map
    ):
        return in_timeline
    from reelscore.hook import score_hook

    return score_hook(in_timeline, argument_map)

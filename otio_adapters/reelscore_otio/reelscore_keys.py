"""reelscore's OTIO hook script after writing: ``--duck``'s volume keys into a written FCPX file.

Attached to ``post_adapter_write``. OTIO's FCPX writer has no place for clip volume keys, so
``reelscore_score`` hands it the unducked score and this adds the keys to the file it wrote.
Active only with ``reelscore.*`` keys in the hook argument map; otherwise it imports nothing.
"""

PREFIX = "reelscore."


def hook_function(in_timeline, argument_map=None):
    """Add the keys to the file just written (FCPX only); return *in_timeline* unchanged."""
    if not argument_map or not any(
        isinstance(key, str) and key.startswith(PREFIX) for key in argument_map
    ):
        return in_timeline
    from reelscore.hook import keys_hook

    return keys_hook(in_timeline, argument_map)

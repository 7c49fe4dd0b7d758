"""OpenTimelineIO plugin package for reelscore: a scoring hook script and a media linker.

OTIO finds this package through the ``opentimelineio.plugins`` entry point (``reelscore =
"reelscore_otio"`` in pyproject.toml) and reads ``plugin_manifest.json`` beside this file; OTIO
then loads each plugin module *by path* as ``opentimelineio.adapters.<name>``, so the modules use
absolute imports only and carry names no other plugin uses.

``reelscore_score`` (hook script, attached to ``pre_adapter_write``)
    Scores the timeline about to be written when the hook argument map holds ``reelscore.*``
    keys, e.g. ``otioconvert -i cut.xml -o scored.otio -H reelscore.provider=local``; without
    them it returns the timeline untouched and imports nothing, so installing reelscore never
    changes what other OTIO tools write.

``reelscore_relink`` (media linker; used only when named, never the default)
    ``otioconvert -i cut.xml -o out.otio -m reelscore_relink -M media_root=/Volumes/footage``
    relinks clips to files of the same name under the media roots.

The logic lives in :mod:`reelscore.hook`; the plugin modules only decide whether to call it.
"""

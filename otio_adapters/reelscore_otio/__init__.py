"""OpenTimelineIO plugin package for reelscore (hook script and media linker).

OTIO finds it through the ``opentimelineio.plugins`` entry point and reads
``plugin_manifest.json`` beside this file.
"""

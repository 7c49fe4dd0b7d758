"""reelscore's OTIO media linker: relink clips by file name under media roots.

``otioconvert -i cut.xml -o out.otio -m reelscore_relink -M media_root=/Volumes/footage``
(several roots: a list, ``-M "media_root=['/a', '/b']"``, or os.pathsep-separated). Optional
``edit_dir`` resolves relative paths. Without ``media_root`` it links nothing. It is never the
default linker unless ``OTIO_DEFAULT_MEDIA_LINKER=reelscore_relink`` is set.
"""


def link_media_reference(in_clip, media_linker_argument_map=None):
    """A new media reference for *in_clip*, or None to keep the one it has."""
    args = media_linker_argument_map or {}
    if not (args.get("media_root") or args.get("reelscore.media_root")):
        return None
    from reelscore.hook import relink_clip

    return relink_clip(in_clip, args)

"""The video-to-music service's request limits (reference/music_api.md §3).

Pure constants shared by the planner (which must respect them) and the providers (which
validate against them); neither imports the other for them.
"""

MAX_VIDEOS_PER_REQUEST = 10
MAX_REQUEST_BYTES = 200 * 1000 * 1000
MAX_REQUEST_SECONDS = 600.0
MAX_TAGS = 10
DEFAULT_MAX_DESCRIPTION = 1000

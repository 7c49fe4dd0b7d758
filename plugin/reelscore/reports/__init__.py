"""What a job folder hands on: the music cue sheet (and the pictures and pages built on it).

Every report reads only the job folder (``manifest.json`` through :mod:`reelscore.job`'s typed
records, the written WAV, the proxy clips), so it works on any finished or interrupted job.
"""

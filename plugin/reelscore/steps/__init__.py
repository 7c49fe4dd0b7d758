"""The steps ``reelscore.pipeline`` runs, one module per idea.

planning   edit + settings -> PlannedEdit (scenes, plan, media resolver)      no side effects
rendering  one request's videos -> proxy clips, recorded in the job as each is written
generation one request's clips -> the provider, with the resume and never-pay-twice rules, and
           the pool that keeps several requests in flight while the next one renders
finishing  answers -> conformed, normalised WAVs -> the scored edit and the run's summary
"""

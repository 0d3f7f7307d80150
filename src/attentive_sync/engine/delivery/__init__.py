"""The one delivery path every record takes to Attentive's bulk endpoint.

plan (each pipeline) -> ``submit`` (bisecting, holds on uncertain answers, every job
recorded before any wait) -> ``settle`` (claimed, per-record results through each
record's ``kinds`` lifecycle) -> ``retry`` (one policy for every queue).
"""

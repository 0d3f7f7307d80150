"""The loyalty program as Attentive sees it: the event catalogue (``catalogue``), each
event's properties (``properties``, ``rewards``), the merchant's selection (``selection``)
and the profile attributes (``attributes``)."""

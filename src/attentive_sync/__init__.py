"""attentive-sync: keeps Attentive in sync with a loyalty program and customer audiences.

The core library. It never imports Prefect: the Prefect shell lives in the top-level
``flows/`` and ``tasks/`` packages and calls into this one.
"""

__version__ = "0.1.0"

"""Prefect flows: thin composition over the core library, no business logic."""

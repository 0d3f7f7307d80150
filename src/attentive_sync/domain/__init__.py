"""Frozen domain models: identifiers, attributes, users, custom events, loyalty events."""

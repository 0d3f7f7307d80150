"""Loyalty events to Attentive custom events, and the loyalty profile attributes."""

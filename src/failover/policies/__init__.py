"""Resilience policies, one module each."""

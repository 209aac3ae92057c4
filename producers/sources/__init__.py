"""Readers that turn store exports into validated orders."""

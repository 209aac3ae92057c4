"""Producers: everything that puts order work on the queue."""

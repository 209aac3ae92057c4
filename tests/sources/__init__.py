"""Tests of the file readers in producers/sources."""

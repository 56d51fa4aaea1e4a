"""Fake upstream servers used by integration tests."""

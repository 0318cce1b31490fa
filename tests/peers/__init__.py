"""Sync peers for integration tests: fixtures, fault proxy, and their own tests."""

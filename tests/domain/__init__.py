"""Behavioural unit tests of the pure domain package (service/domain)."""

"""Test suite of the ketamine FHIR interoperability service."""

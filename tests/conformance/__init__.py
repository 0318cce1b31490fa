"""Test package: FHIR conformance checks run against the HL7 (HAPI FHIR) validator."""

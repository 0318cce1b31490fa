"""Conformance checking of the FHIR resources this service produces.

``hl7_validator`` drives the official HL7 validation engine (HAPI FHIR's ``FhirInstanceValidator``)
running offline in a resident JVM; see ``docs/decisions/0002-hl7-validator.md``.
"""

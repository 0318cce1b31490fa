"""The packet DocumentReference against the HL7 validator: US Core DocumentReference (7.0.0, the
version PAS 2.2.1 pins) and the Da Vinci PAS profile-documentreference, zero errors each."""

from __future__ import annotations

from typing import Callable

from service.coverage.packet import PAS_DOCUMENTREFERENCE, US_CORE_DOCUMENTREFERENCE, Packet


def test_document_reference_conforms_to_us_core(packet: Packet, assert_fhir_valid: Callable) -> None:
    result = assert_fhir_valid(packet.document_reference, profile=US_CORE_DOCUMENTREFERENCE + "|7.0.0")
    assert result.ok


def test_document_reference_conforms_to_pas(packet: Packet, assert_fhir_valid: Callable) -> None:
    result = assert_fhir_valid(packet.document_reference, profile=PAS_DOCUMENTREFERENCE)
    assert result.ok


def test_document_reference_conforms_to_its_declared_profiles(packet: Packet, assert_fhir_valid: Callable) -> None:
    assert_fhir_valid(packet.document_reference)

"""Ketamine program FHIR interoperability service.

Maps clinical program records (ketamine/esketamine sessions, integration psychotherapy,
scored questionnaires, vital signs) to FHIR R4, serves and syncs them, and builds coverage
documentation. See README.md and docs/ for the architecture.
"""

__version__ = "0.1.0"

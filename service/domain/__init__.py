"""Domain model of a ketamine-assisted depression treatment program.

Pure Python (pydantic models and functions): the records a clinic documents and the clinical
rules over them (questionnaire scoring, dosing, outcome status, eligibility). Nothing here
imports another package of this service, a web framework, a database or FHIR models.
"""

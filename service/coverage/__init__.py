"""Coverage documentation for billing staff: payer criteria pre-checks, eligibility,
Da Vinci PAS 2.2.1 prior authorization (request/inquiry Bundles, response interpretation),
authorized-unit tracking, claim documentation per session, SPRAVATO REMS monitoring, the
payer HTTP client and a sandbox payer. Pure functions over a `PatientChart` (records loaded
by the use cases); only `client.py` and `sandbox_payer.py` talk HTTP."""

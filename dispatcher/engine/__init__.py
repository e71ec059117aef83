"""The dispatch engine: claim → eligibility and caps → in flight → submit → record; receipts."""

"""The SMART program: membership, consent, 1204, number life cycle, USSD, bonus ledger."""

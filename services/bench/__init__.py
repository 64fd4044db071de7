"""`charity-ledger bench`: how fast the real ledger drains a backlog, per database backend."""

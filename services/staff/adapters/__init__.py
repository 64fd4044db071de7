"""The staff store: accounts, scopes, sessions and the access log in the ledger's database."""

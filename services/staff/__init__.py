"""Staff accounts, their roles and sessions, and the access log (issue 13)."""

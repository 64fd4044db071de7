"""The donor store in the database."""

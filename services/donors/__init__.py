"""Donors: pledges, payment confirmations, receipt numbers and the erasable donor store.

The API's donate pages and the payment notifications use this package; the
ledger never imports it. `domain` holds the rules (amounts in yuan, receipt
numbers, pledge states), `adapters` the donor store's tables and queries.
"""

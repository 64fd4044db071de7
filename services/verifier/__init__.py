"""The standalone public verifier of donation receipts and signed tree heads.

``receipt.py`` imports nothing from the rest of the project, so it can be copied
on its own. This package deliberately does not import it: ``python -m
services.verifier.receipt`` would otherwise load the module twice.
"""

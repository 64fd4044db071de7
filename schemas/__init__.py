"""The event schemas, built into the wheel as the package ``services.contracts.schemas``.

pyproject.toml maps that package to this directory, so the .avsc files stay at
the top of the repository and still ship inside the package; the code reads
them with importlib.resources (services/contracts/schema_catalog.py). This file
makes the directory a regular package, which editable installs need to import it.
"""

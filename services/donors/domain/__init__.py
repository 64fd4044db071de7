"""The donors\x27 rules: no SQL, no HTTP, no Kafka."""

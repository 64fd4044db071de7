"""Benchmarks, load generators and the fakes only they use; never imported by the product."""

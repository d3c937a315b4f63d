"""Comparison services: one request to both sides, the verdict, records and votes, batches."""

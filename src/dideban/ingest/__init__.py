"""Ingest: reads raw measurements, runs the pipeline and writes the store (sits on both)."""

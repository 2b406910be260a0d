"""Reproducible benchmarks of hybrid-rag against langchain-postgres: `hybrid-rag bench ...`."""

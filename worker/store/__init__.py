"""Durable state: tables, the engine with its SQLite/PostgreSQL settings, and repositories."""

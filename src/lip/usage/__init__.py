"""Usage records: one per request, written in batches to SQLite or PostgreSQL, and queried back."""

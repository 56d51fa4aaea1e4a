"""Shared state: rate-limit buckets, circuit breakers, command sessions and stored Responses of
one deployment, from one URL (``lip.state.shared.open_state``). Stores hold bytes and typed records;
they import no protocol, edge or app code (an import-linter contract)."""

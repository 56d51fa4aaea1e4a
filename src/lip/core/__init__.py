"""LLM Interactive Proxy."""

"""Access control: client keys, tiers and their limits."""

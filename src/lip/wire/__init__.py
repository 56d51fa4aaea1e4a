"""Wire formats of the client and upstream protocols, shared by frontends and backends."""

"""PostgreSQL storage, for collectors on many hosts sharing one database.

`store.PostgresStore` implements the storage interface (store/base.py) with the rules of
store/core.py. Beside it: `connections` (pools, an unreachable server, its errors),
`primitives` (core's statements and the indexing transaction), `partitions` (monthly
event partitions), `listen` (LISTEN for new events) and `migrations`. The read-side SQL
of the query API lives in `queries`.

Imported only for `postgresql://` URLs (store.open_store), so SQLite users never load
psycopg."""

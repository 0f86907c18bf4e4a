"""The dashboard at /dashboard/: server-rendered pages over the same store and query
functions as the query API, behind admin accounts (accounts.py)."""

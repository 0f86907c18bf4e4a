"""Telltale collector: a self-hosted event collector with a tiny browser SDK."""

from collector import native

__version__ = "0.1.0"

# Before any other module is imported: a build of the hot modules that no longer matches
# their sources must not run (collector/native.py).
native.choose()

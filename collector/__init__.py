"""Telltale collector: a self-hosted event collector with a tiny browser SDK."""

__version__ = "0.1.0"

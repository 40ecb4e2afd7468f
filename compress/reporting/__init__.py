"""Reporting: tables, plots, the asv dashboard, history and the cost profile."""

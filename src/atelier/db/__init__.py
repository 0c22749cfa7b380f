"""Persistence: SQLAlchemy tables, the Database handle, repositories and migrations."""

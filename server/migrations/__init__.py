"""Alembic migrations of the styles and jobs database (a package, so it ships with the server)."""

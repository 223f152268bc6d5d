"""The state database: tables, Alembic migrations, connection (DESIGN §11)."""

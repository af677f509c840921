"""The history store: everything that must outlive a restart, behind SQLAlchemy."""

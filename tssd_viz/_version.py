__version__ = "0.2.0"  # the one place; pyproject.toml reads it

__version__ = "0.2.1"  # the one place; pyproject.toml reads it

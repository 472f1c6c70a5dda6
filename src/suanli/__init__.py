"""suanli (算力): the scheduling brain of a city compute network."""

__version__ = "0.1.0"

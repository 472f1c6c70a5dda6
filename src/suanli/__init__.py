"""suanli (算力): the scheduling brain of a city compute network."""

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # `from suanli import Client` without importing httpx for every use of the package
    if name == "Client":
        from suanli.client import Client

        return Client
    raise AttributeError(name)

"""The sandbox's Keap account, one module per resource; `Store` is the whole account the server calls."""
from sandbox.store.account import Store
from sandbox.store.core import ApiError, load_seed

__all__ = ["ApiError", "Store", "load_seed"]

"""Gallery tests share one real Milvus server per session (tests/milvus_server.py)."""
from tests.milvus_server import clean_store, milvus_server  # noqa: F401

"""The console's tests reuse the router's fixtures (a real router on loopback, a fake sfapi)."""
from tests.facerouter.conftest import fake_sfapi, start_router  # noqa: F401

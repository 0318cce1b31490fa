"""pytest plugins shared by the test suite (loaded from the root conftest via ``pytest_plugins``)."""

from tests.outreach.conftest import account, liaison, office, our_doctors  # noqa: F401  (shared fixtures)

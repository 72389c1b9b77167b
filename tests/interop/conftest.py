import pytest
from django.test import Client

from liaison.accounts import services as accounts
from tests.external import sample


def hl7_sample(name: str) -> str:
    """A sample message from ../shared/data/external/hl7v2 (read in place, never copied)."""
    return sample(f"hl7v2/{name}.hl7").read_text(encoding="utf-8-sig")


def replace_segment_field(message: str, segment: str, field: int, value: str) -> str:
    """The message with one field of the first `segment` replaced (field numbers as in HL7)."""
    lines = message.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    for i, line in enumerate(lines):
        if line.startswith(segment + "|"):
            parts = line.split("|")
            index = field - 1 if segment == "MSH" else field
            parts += [""] * (index + 1 - len(parts))
            parts[index] = value
            lines[i] = "|".join(parts)
            break
    return "\r".join(lines)


@pytest.fixture
def token_client(make_user):
    """A test client that authenticates with an API token of a user of that role."""

    def make(role: str, **kwargs) -> Client:
        user = make_user(role, **kwargs)
        _, raw = accounts.create_api_token(user, actor=user, name="tests")
        c = Client(headers={"Authorization": f"Bearer {raw}"})
        c.user = user
        return c

    return make

"""Fixtures shared by the tests; plain helpers live in tests/helpers.py (imported, never a conftest)."""

import pytest

from mistral_mini import ModelArgs, Transformer
from tests.helpers import random_model


@pytest.fixture
def tiny_model() -> Transformer:
    return random_model(ModelArgs.from_name("tiny"))

import doctest

import pytest

from atoll.registry import engine, registry, twins


@pytest.mark.parametrize("module", [engine, registry, twins])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted and not result.failed

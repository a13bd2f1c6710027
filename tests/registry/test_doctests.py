import doctest

import pytest

from atoll.registry import engine, namespaces, registry, twins


@pytest.mark.parametrize("module", [engine, namespaces, registry, twins])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted and not result.failed

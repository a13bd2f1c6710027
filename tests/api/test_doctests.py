import doctest

import pytest

from atoll.api import sender, throttle, times


@pytest.mark.parametrize("module", [sender, throttle, times])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted and not result.failed

"""The examples in the docstrings of the core modules run and print what they say."""

import doctest
import importlib

import pytest


@pytest.mark.parametrize("name", ["ensim.theory", "ensim.errors", "ensim.montecarlo",
                                  "ensim.nn.ensemble"])
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0

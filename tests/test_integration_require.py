"""The integrations' shared helpers, with no library needed: a missing library is one ImportError line naming the
extra; a wrapped method is given back exactly (the object's own attribute, or none where the class's was used)."""

from __future__ import annotations

import pytest

from gendiag.integrations import require, wrap_method


def test_a_missing_library_names_the_extra_in_one_line() -> None:
    with pytest.raises(ImportError) as caught:
        require("no_such_library_for_gendiag", "example", "example")
    message = str(caught.value)
    assert "\n" not in message
    assert "gendiag.integrations.example needs 'no_such_library_for_gendiag'" in message
    assert "pip install 'gendiag[example]'" in message
    assert caught.value.__cause__ is None


def test_wrap_method_gives_the_object_its_own_method_back() -> None:
    class Scheduler:
        def add_noise(self, x: int) -> int:
            return x + 1

    scheduler = Scheduler()
    seen = []

    def wrap(original):
        def wrapped(x: int) -> int:
            seen.append(x)
            return original(x)
        return wrapped

    restore = wrap_method(scheduler, "add_noise", wrap)
    assert scheduler.add_noise(1) == 2 and seen == [1]
    restore()
    restore()
    assert "add_noise" not in vars(scheduler) and scheduler.add_noise(3) == 4 and seen == [1]


def test_x_and_t_reads_each_argument_positional_or_by_keyword() -> None:
    from gendiag.integrations import x_and_t

    inputs = x_and_t("sample", "timestep")
    assert inputs(("x", "t", "extra"), {}) == ("x", "t")
    assert inputs(("x",), {"timestep": "t"}) == ("x", "t")
    assert inputs((), {"sample": "x", "timestep": "t", "class_labels": "y"}) == ("x", "t")
    assert inputs((), {"sample": "x"}) == ("x", None)

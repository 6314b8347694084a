"""Fuzzing the case-file loader: arbitrary YAML text, documents and overrides give a case or a one-line
CaseError, never another exception."""

from __future__ import annotations

from pathlib import Path

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gendiag.config import CaseError, load_case

CASES = Path(__file__).resolve().parent.parent / "cases"
GOOD = yaml.safe_load((CASES / "pointcloud_moons.yaml").read_text())
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)


def _load_or_case_error(path: Path, overrides: list[str] = ()) -> None:
    try:
        load_case(path, overrides=list(overrides))
    except CaseError as error:
        assert "\n" not in str(error) and str(path) in str(error)


@FUZZ
@given(text=st.text(max_size=300))
def test_arbitrary_text(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    _load_or_case_error(path)


@FUZZ
@given(section=st.sampled_from(sorted(GOOD)), key=st.text(min_size=1, max_size=10), value=values)
def test_mutated_sections(tmp_path: Path, section: str, key: str, value: object) -> None:
    document = yaml.safe_load(yaml.safe_dump(GOOD))
    if isinstance(document[section], dict):
        document[section][key] = value
    else:
        document[section] = value
    path = tmp_path / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    _load_or_case_error(path)


@FUZZ
@given(overrides=st.lists(st.text(max_size=30), max_size=3))
def test_arbitrary_overrides(overrides: list[str]) -> None:
    _load_or_case_error(CASES / "pointcloud_moons.yaml", overrides)

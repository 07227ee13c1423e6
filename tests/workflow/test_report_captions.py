"""The report's figure captions are reStructuredText that Snakemake renders: a stray ``|x|`` is a substitution
reference, and docutils then prints an error into the report build (it did, for one caption)."""

import io
from pathlib import Path

import docutils.core
import pytest

CAPTIONS = sorted((Path(__file__).resolve().parents[2] / "resources/report/captions").glob("*.rst"))


def test_there_are_captions():
    assert len(CAPTIONS) > 10


@pytest.mark.parametrize("path", CAPTIONS, ids=lambda p: p.name)
def test_caption_renders_without_docutils_warnings(path):
    warnings = io.StringIO()
    docutils.core.publish_string(
        path.read_text(), writer="null", settings_overrides={"warning_stream": warnings, "report_level": 2}
    )
    assert warnings.getvalue() == "", warnings.getvalue()

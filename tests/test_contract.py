"""The typed contracts (monitor.contract): what the engine writes is a valid document, the
shipped JSON Schemas and docs/contract.md are the records', old documents still read, and a
field renamed or retyped is refused by the records and by the schemas alike."""

from __future__ import annotations

import copy
import json
from datetime import date

import jsonschema
import pytest

from monitor import contract
from monitor.contract import Analysis, CloseupAnalysis, ContractError, json_schema
from monitor.pipeline import CLOSEUP_SCHEMA, analyse_closeup, analyse_series
from tests.courses import REPO

SAMPLES = REPO / "sample_images"


@pytest.fixture(scope="module")
def analysis():
    """The sample course with a file that is no photo, as ``monitor analyze`` writes it."""
    paths = sorted(SAMPLES.glob("day*.jpg"))
    return json.loads(json.dumps(analyse_series(
        [*paths, REPO / "README.md"], treatment_date=date(2026, 3, 2),
        strict=True)))


def _validator(path):
    schema = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_shipped_schemas_and_reference_are_the_records(tmp_path):
    """Regenerate with ``python -m monitor.contract`` after changing a record."""
    for record, path in ((Analysis, contract.ANALYSIS_SCHEMA_FILE),
                         (CloseupAnalysis, contract.LESIONS_SCHEMA_FILE)):
        assert json.loads(path.read_text(encoding="utf-8")) == json_schema(record), path.name
    assert contract.DOC_FILE.read_text(encoding="utf-8") == contract.contract_markdown()


def test_the_analysis_is_a_valid_document_read_back_unchanged(analysis):
    assert {p["status"] for p in analysis["photos"]} == {"ok", "rejected"}
    record = Analysis.from_json(analysis)
    assert record.to_json() == analysis
    assert len(record.photos) == 9 and record.trend is not None
    day1 = next(p for p in record.photos if p.file == "day1.jpg")
    assert day1.lesion_count == len(day1.lesions) and day1.redness.index is not None
    assert {le.kind for le in day1.lesions} <= {"papule", "pustule"}
    errors = list(_validator(contract.ANALYSIS_SCHEMA_FILE).iter_errors(analysis))
    assert errors == []


def test_a_document_of_an_earlier_version_still_reads(analysis):
    """The first published documents had none of the fields added since: no faint spots, no
    lesion reading, colour correction, face match or refinement, no scales of the trend."""
    old = copy.deepcopy(analysis)
    for photo in old["photos"]:
        for key in ("faint_lesions", "lesion_reading", "colour", "face_match",
                    "to_reference_refinement", "colour_card", "image_size", "face"):
            photo.pop(key, None)
    old["trend"].pop("scales")
    for track in old["trend"]["tracks"]:
        track.pop("faint_days")
    record = Analysis.from_json(old)
    assert record.to_json() == old  # nothing filled in that was not there
    assert _validator(contract.ANALYSIS_SCHEMA_FILE).is_valid(old)


def test_fields_a_newer_version_adds_pass_through(analysis):
    newer = copy.deepcopy(analysis)
    newer["photos"][0]["lesion_reading"]["reader_version"] = "2"
    newer["engine"] = {"name": "next"}
    assert Analysis.from_json(newer).to_json() == newer


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["photos"][1].update(lesion_count="7"), "photos.1.lesion_count"),
    (lambda d: d["photos"][1]["lesions"][0].update(kind="nodule"), "photos.1.lesions.0.kind"),
    (lambda d: d["photos"][1].update(status="accepted"), "photos.1.status"),
    (lambda d: d["photos"][1]["redness"].update(index="3.7"), "photos.1.redness.index"),
    (lambda d: d["trend"].update(see_dermatologist="no"), "trend.see_dermatologist"),
    (lambda d: d.update(schema="monitor.analysis/2"), "schema"),
    (lambda d: d["photos"][1].pop("file"), "photos.1.file"),
])
def test_a_renamed_or_retyped_field_is_refused_by_name(analysis, change, field):
    broken = copy.deepcopy(analysis)
    change(broken)
    with pytest.raises(ContractError, match=field.replace(".", r"\.")):
        Analysis.from_json(broken)
    assert not _validator(contract.ANALYSIS_SCHEMA_FILE).is_valid(broken)


def test_the_closeup_document_is_valid(tmp_path):
    (tmp_path / "notes.jpg").write_bytes(b"not a photo")
    document = json.loads(json.dumps({"schema": CLOSEUP_SCHEMA, "photos": [
        analyse_closeup(SAMPLES / "day2.jpg"), analyse_closeup(tmp_path / "notes.jpg")]}))
    record = CloseupAnalysis.from_json(document)
    assert record.to_json() == document
    assert [p.status for p in record.photos] == ["ok", "rejected"]
    assert _validator(contract.LESIONS_SCHEMA_FILE).is_valid(document)
    document["photos"][0]["lesions"][0]["radius"] = None
    with pytest.raises(ContractError, match=r"photos\.0\.lesions\.0\.radius"):
        CloseupAnalysis.from_json(document)
    assert not _validator(contract.LESIONS_SCHEMA_FILE).is_valid(document)

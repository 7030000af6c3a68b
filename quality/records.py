"""The validation log: one JSON line per `hindsight validate` of a feature view at a Delta version.

Lives beside the registry versions (`<registry>/validations.jsonl`). Each line is appended with a
single `write` on a file opened with O_APPEND, so two validations at once never interleave or
overwrite each other's lines, and a reader never sees a line that is half someone else's. A line
cut short by a crash (no trailing newline) is skipped with a warning, never taken as a result.
A registry on S3 (where nothing appends) keeps one object per record under `<registry>/validations/`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hindsight.core.folders import open_folder
from hindsight.core.object_store import is_s3
from hindsight.registry_sync.model import Expectation, FeatureView

log = logging.getLogger(__name__)

LOG_FILE = "validations.jsonl"
#: The folder of records when the registry is on S3.
S3_FOLDER = "validations"

#: Great Expectations' severities; only a failed "critical" expectation fails the version.
BLOCKING_SEVERITY = "critical"


def fingerprint(expectations: Sequence[Expectation]) -> str:
    """A short hash of a view's expectations: a validation counts only for the expectations it ran.

    >>> fingerprint([Expectation("expect_column_values_to_not_be_null", {"column": "id"})])
    '6eab43bf8ce6'
    """
    text = json.dumps([[e.type, e.kwargs] for e in expectations], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class ExpectationResult:
    """One expectation's outcome on one batch of rows."""

    type: str
    kwargs: dict[str, Any]
    success: bool
    #: "critical" (the default: a failure fails the version), "warning" or "info" (recorded only).
    severity: str
    #: Great Expectations' observed value (a mean, a row count, ...) where the expectation has one.
    observed_value: Any = None
    #: Rows the expectation looked at, those that broke a per-row expectation, and Great
    #: Expectations' unexpected_percent (of the non-null rows, except for not-null expectations).
    element_count: int | None = None
    unexpected_count: int | None = None
    unexpected_percent: float | None = None
    #: Up to 20 of the offending values, as Great Expectations reports them (the message shows
    #: 5 distinct ones).
    partial_unexpected_list: list[Any] | None = None
    #: The error, when the expectation could not run (a missing column, a wrong type).
    exception: str | None = None

    @property
    def blocking(self) -> bool:
        """A failure that fails the version."""
        return not self.success and self.severity == BLOCKING_SEVERITY

    def describe(self) -> str:
        """One line: the expectation, its arguments and what was observed.

        >>> ExpectationResult("expect_column_max_to_be_between", {"column": "x", "max_value": 1}, False,
        ...                   "critical", observed_value=3.5).describe()
        'expect_column_max_to_be_between(column=x, max_value=1): observed value 3.5'
        >>> ExpectationResult("expect_column_values_to_not_be_null", {"column": "x"}, False, "critical",
        ...                   element_count=3, unexpected_count=1, partial_unexpected_list=[None]).describe()
        'expect_column_values_to_not_be_null(column=x): 1 of 3 rows unexpected, e.g. [None]'
        """
        arguments = ", ".join(f"{k}={v}" for k, v in self.kwargs.items())
        head = f"{self.type}({arguments})"
        if self.exception:
            return f"{head}: could not run: {self.exception}"
        parts = []
        if self.observed_value is not None:
            parts.append(f"observed value {self.observed_value}")
        if self.unexpected_count is not None:
            of = f" of {self.element_count:,}" if self.element_count is not None else ""
            distinct = {json.dumps(v, sort_keys=True, default=str): v for v in self.partial_unexpected_list or []}
            sample = f", e.g. {list(distinct.values())[:5]}" if distinct else ""
            parts.append(f"{self.unexpected_count:,}{of} rows unexpected{sample}")
        return f"{head}: {'; '.join(parts) or 'no observed value'}"


@dataclass(frozen=True)
class ValidationRecord:
    """The result of validating one feature view at one Delta version."""

    view: str
    #: The Delta version validated: the table as this version left it.
    delta_version: int
    #: The Delta table's id (a recreated table starts its versions again).
    table_id: str
    #: "changes": the rows versions from_version..delta_version added (change data feed);
    #: "all_rows": every row of the table at delta_version.
    scope: str
    from_version: int | None
    rows: int
    #: No critical expectation failed.
    passed: bool
    #: `fingerprint()` of the expectations that ran.
    expectations: str
    results: tuple[ExpectationResult, ...]
    validated_at: str
    #: The applied registry version whose expectations ran (None: a registry never applied).
    registry_version: int | None = None
    #: Why the scope differs from what was asked (e.g. the change data feed was unavailable).
    note: str = ""

    @property
    def failures(self) -> tuple[ExpectationResult, ...]:
        return tuple(r for r in self.results if not r.success)

    @property
    def rows_checked(self) -> str:
        """Which rows ran: "1,204 rows added by versions 4..6" or "all 10,000 rows".

        >>> dataclasses.replace(_EXAMPLE, scope="changes", from_version=4, delta_version=6, rows=1204).rows_checked
        '1,204 rows added by versions 4..6'
        """
        if self.scope == "all_rows":
            return f"all {self.rows:,} rows"
        versions = f"version {self.delta_version}" if self.from_version == self.delta_version else \
            f"versions {self.from_version}..{self.delta_version}"
        return f"{self.rows:,} rows added by {versions}"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ValidationRecord:
        results = tuple(ExpectationResult(**r) for r in data.get("results", ()))
        return cls(**{**data, "results": results})


_EXAMPLE = ValidationRecord("v", 0, "id", "all_rows", None, 0, True, "", (), "")


class ValidationLog:
    """The validation records of one project (`<registry>/validations.jsonl`, or on S3 one object
    per record under `<registry>/validations/`: S3 cannot append to an object)."""

    def __init__(self, path: Path | str):
        self.path: Path | str = path if is_s3(path) else Path(path)
        #: A registry on S3: records are objects named <time ns>.<random>.<view>.json in this folder.
        self._objects = open_folder(path) if is_s3(path) else None

    @classmethod
    def in_registry(cls, registry_dir: Path | str) -> ValidationLog:
        if is_s3(registry_dir):
            return cls(f"{str(registry_dir).rstrip('/')}/{S3_FOLDER}")
        return cls(Path(registry_dir) / LOG_FILE)

    def append(self, record: ValidationRecord) -> None:
        """Add `record` as one line, in one write (see the module docstring), and fsync it."""
        if self._objects is not None:
            # Created, never replaced: two validations at once each add their own object.
            name = f"{time.time_ns():020d}.{uuid.uuid4().hex[:12]}.{record.view}.json"
            if not self._objects.create(name, record.to_json().encode()):
                raise OSError(f"{self.path}/{name} exists already; validation record not written")
            return
        assert isinstance(self.path, Path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (record.to_json() + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            written = os.write(fd, line)
            if written != len(line):  # a full disk; never leave a line that reads as a result
                raise OSError(f"{self.path}: wrote {written} of {len(line)} bytes of a validation record")
            os.fsync(fd)
        finally:
            os.close(fd)

    def records(self, view: str | None = None) -> Iterator[ValidationRecord]:
        """Every record (of `view`), oldest first."""
        if self._objects is not None:
            # Names start with the time they were written: sorted names are oldest first.
            for name in sorted(self._objects.names()):
                parts = name.split(".", 2)
                if len(parts) == 3 and parts[2].endswith(".json") and (view is None or parts[2] == f"{view}.json"):
                    data = self._objects.read(name)
                    if data is not None:
                        yield ValidationRecord.from_dict(json.loads(data))
            return
        assert isinstance(self.path, Path)
        if not self.path.exists():
            return
        with self.path.open("rb") as lines:
            for number, raw in enumerate(lines, start=1):
                if not raw.endswith(b"\n"):
                    log.warning("%s line %d is incomplete (a validation cut short); ignored", self.path, number)
                    continue
                data = json.loads(raw)
                if view is None or data["view"] == view:
                    yield ValidationRecord.from_dict(data)

    def latest_by_version(self, view: FeatureView, table_id: str) -> dict[int, ValidationRecord]:
        """The newest record of each Delta version of this table, validated with the view's current
        expectations (a record for other expectations no longer says anything)."""
        wanted = fingerprint(view.expectations)
        latest: dict[int, ValidationRecord] = {}
        for record in self.records(view.name):
            if record.table_id == table_id and record.expectations == wanted:
                latest[record.delta_version] = record
        return latest

    def status(self, view: FeatureView, table_id: str, version: int) -> ValidationRecord | None:
        """The record that decides whether `version` may be published: its newest validation."""
        return self.latest_by_version(view, table_id).get(version)

    def newest_passed(self, view: FeatureView, table_id: str, below: int | None = None) -> ValidationRecord | None:
        """The newest version whose newest validation passed (only versions < `below`, if given)."""
        passed = [r for v, r in self.latest_by_version(view, table_id).items() if r.passed and (below is None or v < below)]
        return max(passed, key=lambda r: r.delta_version, default=None)

"""Which local folders can hold a Delta table: the characters delta-rs and DuckDB cannot open.

delta-rs turns a local path into a `file://` URL before it opens it, and DuckDB's delta extension
percent-decodes the paths in the log. So a folder name with `[`, `]`, `^` or `|` makes delta-rs
panic (`InvalidDomainCharacter`), a backslash becomes a path separator, and a `%` makes DuckDB
read another file name (measured with deltalake 1.6 and DuckDB's delta extension 1.4). A project
in such a folder cannot build its Delta tables, so settings and the writer refuse the path by
name before dbt does any work.
"""

from __future__ import annotations

#: Characters a local Delta location may not contain.
UNSUPPORTED = "[]^|\\%"


def delta_path_problem(location: str, setting: str, set_in: str = "") -> str | None:
    """Why `location` cannot hold a Delta table, or None: names `setting` (set in `set_in`), the rule
    and a path that can.

    Only local paths are checked; `s3://...` keys may hold any character.

    >>> delta_path_problem("/home/me/projects/fraud/data/offline_store", "offline_store") is None
    True
    >>> delta_path_problem("s3://bucket/a[1]/store", "offline_store") is None
    True
    >>> problem = delta_path_problem("/me/fraud [copy]/store", "offline_store", "hindsight.yml")
    >>> problem.split(";")[0], problem.rsplit("e.g. ", 1)[1]
    ("offline_store: the path /me/fraud [copy]/store contains '[' and ']'", '/me/fraud _copy_/store')
    """
    path = location.removeprefix("file://")
    if "://" in path:
        return None
    found = [c for c in UNSUPPORTED if c in path]
    if not found:
        return None
    suggestion = "".join("_" if c in UNSUPPORTED else c for c in path)
    return (
        f"{setting}: the path {path} contains {' and '.join(repr(c) for c in found)}; a local Delta table's "
        f"path may not contain any of {' '.join(UNSUPPORTED)} (delta-rs and DuckDB read it as a URL). "
        f"Move the project to a folder without them, or set {setting}{' in ' + set_in if set_in else ''} "
        f"to such a path, e.g. {suggestion}"
    )

"""Validation rules (docs/chant-format.md §8), run over the spec table.

Upstream's rules (``parse``, ``title``, ``dependency``, ``type``, ``complexity``,
``coupling``, ``approval``) and ours: ``cycle`` (dependency cycles, an error), ``status`` and
``value`` (unknown status/type values and unusable priorities, warnings: they load, but
upstream would refuse them) and ``duplicate`` (two files with one ID, an error). Rules named
in the config's ``lint.disable`` are skipped. Everything here reads rows, so lint needs no
second pass over the files.
"""

from __future__ import annotations

from .ids import driver_of, sort_key
from .values import KNOWN_STATUSES, KNOWN_TYPES

__all__ = ["lint_rows", "RULES"]

RULES = (
    "parse", "title", "dependency", "cycle", "type", "complexity", "complexity_words", "coupling",
    "approval", "status", "value", "duplicate",
)

_DEPENDS_HINT = "Use depends_on for dependencies instead of referencing spec IDs in the body"


def _diag(spec_id, rule, severity, message, suggestion=None) -> dict:
    return {"spec_id": spec_id, "rule": rule, "severity": severity, "message": message, "suggestion": suggestion}


def _row_rules(row, table, config) -> list[dict]:
    """Rules that look at one spec (and, for references, at which IDs exist)."""
    out: list[dict] = []
    row = row.full()
    sid = row.id
    if row.error:
        out.append(_diag(sid, "parse", "error", row.error, "Fix the YAML between the '---' lines"))
        return out
    if not row.title:
        out.append(_diag(sid, "title", "error", "Spec has no title (a body line starting with '# ')"))
    known = table.by_id
    for dep in row.depends_on or ():
        if dep not in known:
            out.append(_diag(sid, "dependency", "error", f"depends_on names unknown spec '{dep}'"))
    for member in row.members:
        if member not in known:
            out.append(_diag(sid, "dependency", "error", f"members names unknown spec '{member}'"))
    keys = set(row.keys)
    if row.raw_status is not None and row.status not in KNOWN_STATUSES:
        out.append(
            _diag(sid, "status", "warning", f"Unknown status '{row.raw_status}'", "Valid: " + ", ".join(KNOWN_STATUSES))
        )
    if row.raw_type is not None and row.type not in KNOWN_TYPES:
        out.append(_diag(sid, "value", "warning", f"Unknown type '{row.raw_type}'", "Valid: " + ", ".join(KNOWN_TYPES)))
    if row.priority is None:
        out.append(_diag(sid, "value", "warning", "priority is not low/normal/high/critical or an integer"))
    if row.type == "documentation" and not keys & {"tracks", "target_files"}:
        out.append(_diag(sid, "type", "warning", "Documentation spec has neither tracks nor target_files"))
    if row.type == "research":
        if not keys & {"informed_by", "origin"}:
            out.append(_diag(sid, "type", "warning", "Research spec has neither informed_by nor origin"))
        if "target_files" not in keys:
            out.append(_diag(sid, "type", "warning", "Research spec has no target_files for its output"))
    if row.type in ("driver", "group") and not row.members and not table.graph.members(sid):
        out.append(_diag(sid, "type", "warning", f"{row.type.capitalize()} spec has no members"))
    max_criteria = config.lint_threshold("complexity_criteria")
    if row.total > max_criteria:
        out.append(
            _diag(
                sid, "complexity", "warning",
                f"Spec has {row.total} acceptance criteria (>{max_criteria}) - consider splitting",
                f"Consider using 'chant split {sid}'",
            )
        )
    max_files = config.lint_threshold("complexity_files")
    if len(row.target_files) > max_files:
        out.append(
            _diag(
                sid, "complexity", "warning",
                f"Spec touches {len(row.target_files)} files (>{max_files}) - consider splitting",
                f"Consider using 'chant split {sid}'",
            )
        )
    if "complexity_words" not in config.lint_disabled:
        max_words = config.lint_threshold("complexity_words")
        if row.words > max_words:
            out.append(
                _diag(
                    sid, "complexity", "warning",
                    f"Spec description is {row.words} words (>{max_words})",
                    f"Consider using 'chant split {sid}'",
                )
            )
    out.extend(_coupling(row))
    if row.approval is not None:
        _required, status, by, at = row.approval
        if status in ("approved", "rejected"):
            missing = [name for name, value in (("by", by), ("at", at)) if not value]
            if missing:
                out.append(
                    _diag(sid, "approval", "error", f"Approval is {status} but has no {' or '.join(missing)}")
                )
    return out


def _coupling(row) -> list[dict]:
    if row.type in ("driver", "group"):
        return []
    sid = row.id
    refs = sorted({r for r in row.refs if not r.startswith(sid) and not sid.startswith(r)}, key=sort_key)
    driver = driver_of(sid)
    if driver is not None:
        refs = [r for r in refs if driver_of(r) == driver]
        if refs:
            return [
                _diag(
                    sid, "coupling", "warning",
                    f"Spec references sibling spec(s): {', '.join(refs)} - member specs should be independent",
                    _DEPENDS_HINT,
                )
            ]
        return []
    if refs:
        return [
            _diag(
                sid, "coupling", "warning",
                f"Spec references other spec ID(s) in body: {', '.join(refs)} - use depends_on for dependencies",
                _DEPENDS_HINT,
            )
        ]
    return []


def lint_rows(table, config, *, include_archive: bool = False, ids=None) -> dict:
    """Lint the table's specs (and the files that do not parse); upstream's JSON shape."""
    rows = dict(table.active)
    if include_archive:
        for spec_id, row in table.archived.items():
            rows.setdefault(spec_id, row)
    if ids is not None:
        rows = {i: rows[i] for i in ids if i in rows}
    disabled = config.lint_disabled
    per_spec: dict[str, list[dict]] = {sid: _row_rules(row, table, config) for sid, row in rows.items()}
    for row in table.broken.values():  # files that do not parse are left out of every other view
        if (include_archive or not row.archived) and (ids is None or row.id in ids):
            per_spec.setdefault(row.id, []).extend(_row_rules(row, table, config))
    for cycle in table.graph.cycles:
        head = cycle[0]
        if head in per_spec:
            per_spec[head].append(
                _diag(head, "cycle", "error", "Dependency cycle: " + " -> ".join(cycle), "Remove one depends_on link")
            )
    for spec_id, paths in table.duplicates:
        if spec_id in per_spec:
            per_spec[spec_id].append(
                _diag(spec_id, "duplicate", "error", f"Several files hold this ID: {', '.join(paths)}")
            )
    diagnostics: list[dict] = []
    passed = warned = failed = 0
    for sid in sorted(per_spec, key=sort_key):
        found = [d for d in per_spec[sid] if d["rule"] not in disabled]
        diagnostics.extend(found)
        if any(d["severity"] == "error" for d in found):
            failed += 1
        elif found:
            warned += 1
        else:
            passed += 1
    return {"diagnostics": diagnostics, "passed": passed, "warned": warned, "failed": failed, "total": len(per_spec)}

"""Validation outcome: every problem found in a submission, and the caps that apply.

Validation never stops at the first problem: each check adds to a
:class:`Report`, and the caller decides what to do with it. Errors make a
submission unacceptable; warnings are corrected (a submitted total that
disagrees with the recomputed one, for example) and recorded with the entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from knowgen.errors import DataError

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class SubmissionLimits:
    """Caps applied to untrusted submissions (archives, folders and images).

    Attributes:
        max_members: Most files (and folders) a submission may hold.
        max_total_bytes: Most bytes all files may hold together once unpacked.
        max_ratio: Largest ratio of unpacked bytes to archive bytes (zip bombs).
        ratio_floor_bytes: Below this many unpacked bytes the ratio is not checked.
        max_file_bytes: Largest single file (samples.jsonl included).
        max_yaml_bytes: Largest ``submission.yaml``.
        max_image_bytes: Largest single image file.
        max_image_pixels: Most pixels (width x height) an image may claim.
        max_image_side: Longest side an image may claim.
        image_formats: Image formats accepted, as Pillow names them.
    """

    max_members: int = 20_000
    max_total_bytes: int = 2 * 1024**3
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 16 * 1024**2
    max_file_bytes: int = 512 * 1024**2
    max_yaml_bytes: int = 64 * 1024
    max_image_bytes: int = 16 * 1024**2
    max_image_pixels: int = 4096 * 4096
    max_image_side: int = 8192
    image_formats: tuple[str, ...] = ("PNG", "JPEG", "WEBP")


@dataclass(frozen=True)
class Problem:
    """One problem: where it is (a field or a file) and what is wrong."""

    where: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.where}: {self.message}"


@dataclass
class Report:
    """Every problem found in one submission.

    Attributes:
        source: The submission path as given.
        problems: All problems, in the order they were found.
        info: Facts gathered along the way (sample counts, the benchmark, ...).
    """

    source: str
    problems: list[Problem] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def error(self, where: str, message: str) -> None:
        """Record a problem that makes the submission unacceptable."""
        self.problems.append(Problem(where, message, "error"))

    def warn(self, where: str, message: str) -> None:
        """Record a problem that is corrected (and noted with the entry)."""
        self.problems.append(Problem(where, message, "warning"))

    @property
    def errors(self) -> list[Problem]:
        """The problems of severity ``error``."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """The problems of severity ``warning``."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when no error was found (warnings allowed)."""
        return not self.errors

    def text(self, limit: int | None = None) -> str:
        """A readable listing of the problems (``limit`` lines at most)."""
        head = (f"{self.source}: {len(self.errors)} error(s), {len(self.warnings)} warning(s)"
                if self.problems else f"{self.source}: no problems found")
        shown = self.problems if limit is None else self.problems[:limit]
        lines = [head, *(f"  {p}" for p in shown)]
        if len(shown) < len(self.problems):
            lines.append(f"  ... and {len(self.problems) - len(shown)} more")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON."""
        return {"source": self.source, "ok": self.ok, "info": dict(self.info),
                "problems": [{"where": p.where, "message": p.message, "severity": p.severity}
                             for p in self.problems]}


class SubmissionError(DataError):
    """A submission was refused; ``report`` lists every problem found.

    Args:
        report: The validation report.
        limit: Most problems quoted in the message.
    """

    def __init__(self, report: Report, limit: int = 40):
        self.report = report
        super().__init__(f"The submission was refused. Fix these problems and submit again.\n"
                         f"{report.text(limit)}")

"""Quality gates: score a step's outputs with the scorers of ``atelier.media.scoring``.

Which scorer measures what is written in that module; here is only how a gate uses
them. ``technical`` must pass every check (the size, frame count and fps asked for; not
blank; not flat noise). ``consistency`` compares each output with the character's first
reference image and passes at the gate's threshold (default 0.8). ``seams`` checks that
no seam between the segments of a joined video changes more than the largest change
between neighbouring frames inside a segment. A target passes when all its scores pass.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from atelier.db.tables import ArtifactRow
from atelier.errors import AtelierError

if TYPE_CHECKING:
    from atelier.media import scoring  # NumPy, SciPy, scikit-image, PyAV: loaded on first use

TECHNICAL_THRESHOLD = 1.0  # every check
SEAM_THRESHOLD = 0.9  # as atelier.media.scoring advises: 10 % for codec noise


@dataclass
class Verdict:
    target: str
    passed: bool
    scores: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self, attempt: int) -> dict[str, Any]:
        return {
            "target": self.target,
            "passed": self.passed,
            "scores": self.scores,
            "evaluation": attempt,
        }


class GateKeeper:
    def __init__(self, path_of: Callable[[ArtifactRow], Path]) -> None:
        self.path_of = path_of

    async def evaluate(
        self,
        spec: dict[str, Any],
        files: dict[str, list[ArtifactRow]],
        reference: ArtifactRow | None,
    ) -> list[Verdict]:
        return await asyncio.to_thread(self._evaluate, spec, files, reference)

    def _evaluate(
        self,
        spec: dict[str, Any],
        files: dict[str, list[ArtifactRow]],
        reference: ArtifactRow | None,
    ) -> list[Verdict]:
        from atelier.media import scoring  # only studio runs with gates pay for its imports

        verdicts = []
        for target in spec["targets"]:
            scores: list[scoring.Score] = []
            outputs = files.get(target) or []
            if not outputs:
                scores.append(scoring.Score("technical", 0.0, False, 1.0, {"reason": "no output"}))
            for artifact in outputs:
                scores.extend(self._score(spec, artifact, files, reference))
            verdicts.append(
                Verdict(target, all(s.passed for s in scores), [s.as_dict() for s in scores])
            )
        return verdicts

    def _score(
        self,
        spec: dict[str, Any],
        artifact: ArtifactRow,
        files: dict[str, list[ArtifactRow]],
        reference: ArtifactRow | None,
    ) -> list[scoring.Score]:
        from atelier.media import scoring

        threshold = float(spec.get("threshold", 0.8))
        expect = dict(spec.get("expect") or {})
        path = self.path_of(artifact)
        scores = []
        try:
            for name in spec["scorers"]:
                if name == "technical":
                    video = artifact.kind == "video"
                    scores.append(
                        scoring.technical(
                            path,
                            width=expect.get("width") if video or not reference else None,
                            height=expect.get("height") if video or not reference else None,
                            frames=expect.get("frames") if video else None,
                            fps=expect.get("fps") if video else None,
                            threshold=TECHNICAL_THRESHOLD,
                        )
                    )
                elif name == "consistency" and reference is not None:
                    scores.append(
                        scoring.consistency(path, [self.path_of(reference)], threshold=threshold)
                    )
                elif name == "seams" and len(spec.get("segments", [])) > 1:
                    segments = [self.path_of(files[s][0]) for s in spec["segments"] if files.get(s)]
                    scores.append(scoring.seam_continuity(segments, threshold=SEAM_THRESHOLD))
        except (AtelierError, OSError, ValueError) as exc:
            scores.append(scoring.Score(name, 0.0, False, threshold, {"error": str(exc)}))
        return scores

"""Who may see a photo, and whose photo may be deleted (pure rules, no I/O).

Photos are private. The owner sees their own; a reviewer sees a photo once an application that
cites it has been submitted to one of the reviewer's confirmation points; a senior reviewer
(the provincial office) sees every photo cited by a submitted application. Everyone else is told
the photo does not exist, so ids cannot be probed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Viewer:
    """The caller, as far as photo access cares."""

    account_id: str
    is_candidate: bool
    roles: frozenset[str] = frozenset()
    confirmation_points: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PhotoUse:
    """A live photo and the confirmation points of the submitted applications citing it.

    Only citations by the photo's own owner count towards reviewer access (an application citing
    a stranger's photo id grants nothing).
    """

    owner_id: str
    cited_at_points: frozenset[str] = field(default_factory=frozenset)


def may_view(viewer: Viewer, photo: PhotoUse) -> bool:
    """Whether `viewer` may see the photo's bytes and facts."""
    if viewer.is_candidate:
        return viewer.account_id == photo.owner_id
    if not photo.cited_at_points:
        return False
    if "senior_reviewer" in viewer.roles:
        return True
    return "reviewer" in viewer.roles and not viewer.confirmation_points.isdisjoint(
        photo.cited_at_points
    )


def may_delete(viewer: Viewer, photo: PhotoUse) -> bool:
    """Only the owner deletes a photo (pinning is checked separately, with its own error)."""
    return viewer.is_candidate and viewer.account_id == photo.owner_id


def unique_formats(original: str, renditions: Collection[str]) -> list[str]:
    """The formats stored, the original's first, each once."""
    formats = [original]
    for rendition in renditions:
        if rendition not in formats:
            formats.append(rendition)
    return formats

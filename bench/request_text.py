"""Component benchmark: what servicekit's text rule costs a request body (in process, no HTTP).

Validates review's largest request, an initial review of 60 courses with reasons and a note,
with its real model (a `StrictRequest`) and with the same fields on a plain pydantic model, and
prints microseconds per validation (best of five runs of 2,000)."""

from __future__ import annotations

import timeit
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from review_service.entrypoints.api import InitialReviewRequest, VerdictIn

BODY = {
    "submission_number": 1,
    "note": "材料齐全，成绩单与证书一致。\n第二行备注",
    "decisions": [
        {"course_code": f"{i:05d}", "outcome": "denied", "reason": "证书等级不符合免考要求" * 3}
        for i in range(60)
    ],
}


def plain_copy(model: type[BaseModel], **replaced: type[BaseModel]) -> type[BaseModel]:
    """The model's fields and constraints on a plain BaseModel (no text rule)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        annotation = info.annotation
        for old, new in replaced.items():
            if annotation == list[globals()[old]]:  # type: ignore[misc]
                annotation = list[new]  # type: ignore[valid-type]
        fields[name] = (annotation, info)
    return create_model(f"Plain{model.__name__}", __config__=ConfigDict(extra="forbid"), **fields)


PlainVerdict = plain_copy(VerdictIn)
PlainRequest = plain_copy(InitialReviewRequest, VerdictIn=PlainVerdict)


def per_call(model: type[BaseModel], number: int = 2000) -> float:
    runs = timeit.repeat(lambda: model.model_validate(BODY), number=number, repeat=5)
    return min(runs) / number * 1e6


def main() -> None:
    assert issubclass(InitialReviewRequest, BaseModel) and issubclass(VerdictIn, BaseModel)
    strict = per_call(InitialReviewRequest)
    plain = per_call(PlainRequest)
    print(f"initial review, 60 courses: StrictRequest {strict:.1f} µs, plain {plain:.1f} µs, "
          f"text rule {strict - plain:+.1f} µs per body")  # fmt: skip


if __name__ == "__main__":
    main()

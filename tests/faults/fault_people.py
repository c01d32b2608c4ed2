"""The fault lane's candidates: synthetic people, each on the roster, with a degree record in
the CHSI sandbox and a CET-4 certificate in the NEEA sandbox, so every one of them can walk the
whole journey (register, degree verification, certificate check, apply with the certificate).

The six packaged sandbox people are the other lanes'; these are generated from the seed, with
valid GB 11643 ID numbers, and handed to the sandboxes through `SANDBOX_EXTRA_SEED`.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from sandboxes.seed import gb11643_check_digit, is_valid_id_number

ROSTER_HEADER = "准考证号,身份证号,姓名,性别,考区,报名区县,专业代码,已合格课程"
POINT = "140105"  # 太原市小店区: the demo point reviewer's
MAJOR = "530605"  # the demo major whose CET-4 route exempts 13124
COURSE = "13124"
ROUTE = "CET4-NEW"
_SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"


@dataclass(frozen=True)
class Person:
    """One synthetic candidate."""

    index: int
    ticket: str
    id_number: str
    name: str
    gender: str
    mobile: str
    chsi_password: str
    certificate: str
    record_id: str


def people(count: int, seed: int) -> list[Person]:
    """`count` distinct people, the same for the same seed."""
    rng = random.Random(seed)
    born = date(1985, 1, 1)
    out = []
    for i in range(count):
        birthday = born + timedelta(days=rng.randrange(0, 5000))
        sequence = f"{(i * 7 + seed) % 1000:03d}"
        first17 = f"140105{birthday:%Y%m%d}{sequence}"
        id_number = first17 + gb11643_check_digit(first17)
        assert is_valid_id_number(id_number), id_number
        gender = "男" if int(sequence[-1]) % 2 else "女"
        name = rng.choice(_SURNAMES) + rng.choice(_GIVEN) + rng.choice(_GIVEN)
        out.append(
            Person(
                index=i,
                ticket=f"0201{seed % 10000:04d}{i:04d}",
                id_number=id_number,
                name=name,
                gender=gender,
                mobile=f"139{seed % 1000:03d}{i:05d}",
                chsi_password=f"fault-{seed}-{i}",
                certificate=f"1912{seed % 10000:04d}{i:07d}",
                record_id=f"fault-rec-{seed}-{i}",
            )
        )
    ids = [p.id_number for p in out]
    assert len(set(ids)) == len(ids), "ID numbers must be distinct"
    return out


def roster_csv(persons: list[Person]) -> str:
    """The roster rows identity imports (the header of devstack.demo)."""
    rows = [
        f"{p.ticket},{p.id_number},{p.name},{p.gender},140100,{POINT},{MAJOR}," for p in persons
    ]
    return "\n".join([ROSTER_HEADER, *rows]) + "\n"


def sandbox_seed(persons: list[Person]) -> dict[str, object]:
    """The extra seed of the CHSI and NEEA sandboxes (tools/sandboxes: SANDBOX_EXTRA_SEED)."""
    chsi = []
    neea = []
    for p in persons:
        birth = f"{p.id_number[6:10]}-{p.id_number[10:12]}-{p.id_number[12:14]}"
        chsi.append(
            {
                "id_number": p.id_number,
                "name": p.name,
                "password": p.chsi_password,
                "records": [
                    {
                        "record_id": p.record_id,
                        "name": p.name,
                        "gender": p.gender,
                        "id_number": p.id_number,
                        "birth_date": birth,
                        "institution": "山西大学",
                        "level": "专科",
                        "major": "会计",
                        "duration_years": 3,
                        "category": "普通高等教育",
                        "study_form": "普通全日制",
                        "entry_date": "2008-09-01",
                        "graduation_date": "2011-06-30",
                        "conclusion": "毕业",
                        "certificate_number": f"1010862011{p.index:08d}",
                        "transcript": [],
                    }
                ],
            }
        )
        neea.append(
            {
                "exam": "CET",
                "certificate_number": p.certificate,
                "id_number": p.id_number,
                "name": p.name,
                "level": 4,
                "subject": None,
                "score": 480,
                "exam_session": "2012年6月",
                "issued_on": "2012-08-20",
            }
        )
    return {"chsi": {"people": chsi}, "neea": {"certificates": neea}}


def write_seeds(persons: list[Person], directory: Path) -> tuple[Path, Path]:
    """Write the roster CSV and the sandboxes' extra seed; their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    roster = directory / "fault-roster.csv"
    roster.write_text(roster_csv(persons), encoding="utf-8")
    seed = directory / "fault-sandbox-seed.json"
    seed.write_text(json.dumps(sandbox_seed(persons), ensure_ascii=False), encoding="utf-8")
    return roster, seed

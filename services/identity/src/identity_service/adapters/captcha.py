"""Image captchas (验证码): drawn with Pillow, one-time, short-lived, checked on the server."""

from __future__ import annotations

import hashlib
import hmac
import io
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import asyncpg
from PIL import Image, ImageDraw, ImageFilter, ImageFont

# No characters that look alike (0/O, 1/I/L, 2/Z, 5/S, 8/B).
ALPHABET = "34679ACDEFGHJKMNPQRTUVWXY"
LENGTH = 4
WIDTH, HEIGHT = 120, 44


class CaptchaProblem(StrEnum):
    """Why a captcha answer was not accepted."""

    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"
    WRONG = "wrong"


@dataclass(frozen=True)
class Captcha:
    """A new captcha: its id (sent back with the answer), PNG image and lifetime."""

    captcha_id: uuid.UUID
    png: bytes
    expires_in: int


def draw(text: str, rng: secrets.SystemRandom | None = None) -> bytes:
    """Render `text` as a noisy PNG that people read easily and simple OCR does not."""
    rng = rng or secrets.SystemRandom()
    image = Image.new("RGB", (WIDTH, HEIGHT), (rng.randint(230, 255),) * 3)
    pen = ImageDraw.Draw(image)
    for _ in range(6):
        pen.line(
            [(rng.randint(0, WIDTH), rng.randint(0, HEIGHT)) for _ in range(2)],
            fill=tuple(rng.randint(120, 200) for _ in range(3)),
            width=1,
        )
    font = ImageFont.load_default(size=30)
    step = (WIDTH - 16) // len(text)
    for index, char in enumerate(text):
        glyph = Image.new("RGBA", (step + 12, HEIGHT), (0, 0, 0, 0))
        ImageDraw.Draw(glyph).text(
            (6, 3), char, font=font, fill=tuple(rng.randint(0, 110) for _ in range(3))
        )
        glyph = glyph.rotate(rng.uniform(-25, 25), resample=Image.Resampling.BICUBIC)
        image.paste(glyph, (8 + index * step + rng.randint(-2, 2), rng.randint(-3, 3)), glyph)
    for _ in range(120):
        pen.point((rng.randint(0, WIDTH - 1), rng.randint(0, HEIGHT - 1)), fill=(90, 90, 90))
    image = image.filter(ImageFilter.SMOOTH)
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


class CaptchaStore:
    """Issues captchas and checks answers; every check consumes the captcha, right or wrong."""

    def __init__(self, pool: asyncpg.Pool, secret: bytes, ttl: timedelta = timedelta(minutes=2)):
        self._pool = pool
        self._secret = secret
        self._ttl = ttl

    def _hash(self, captcha_id: uuid.UUID, answer: str) -> bytes:
        message = f"{captcha_id}:{answer.strip().upper()}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    async def issue(self) -> Captcha:
        """A new captcha, stored only as a keyed hash of its answer."""
        text = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
        captcha_id = uuid.uuid4()
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO identity.captchas (id, answer_hash, expires_at)"
                " VALUES ($1, $2, now() + $3)",
                captcha_id,
                self._hash(captcha_id, text),
                self._ttl,
            )
        return Captcha(captcha_id, draw(text), int(self._ttl.total_seconds()))

    async def check(self, captcha_id: uuid.UUID, answer: str) -> CaptchaProblem | None:
        """None when the answer is right; the captcha is spent either way."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                """
                WITH target AS (
                    SELECT id, used_at, expires_at FROM identity.captchas WHERE id = $1 FOR UPDATE
                )
                UPDATE identity.captchas c SET used_at = coalesce(c.used_at, now())
                FROM target t WHERE c.id = t.id
                RETURNING c.answer_hash, t.used_at AS was_used, t.expires_at <= now() AS expired
                """,
                captcha_id,
            )
        if row is None:
            return CaptchaProblem.UNKNOWN
        if row["was_used"] is not None:
            return CaptchaProblem.USED
        if row["expired"]:
            return CaptchaProblem.EXPIRED
        if not hmac.compare_digest(bytes(row["answer_hash"]), self._hash(captcha_id, answer)):
            return CaptchaProblem.WRONG
        return None

    async def sweep(self) -> int:
        """Delete captchas that expired over an hour ago; returns how many."""
        async with self._pool.acquire() as conn:
            result = await conn.execute(
                "DELETE FROM identity.captchas WHERE expires_at < now() - interval '1 hour'"
            )
        return int(result.split()[-1])

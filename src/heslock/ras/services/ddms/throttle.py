"""A token bucket per key in ``rate_limit_buckets`` (SCS throttling), for DDMS oracles.

The legitimacy check answers "does this device id exist, and is it free?": an oracle a
scanner could use to enumerate a maker's id space. Each user gets a bucket; an empty
bucket is a 429 with ``Retry-After``. The bucket row is read ``FOR UPDATE`` (PostgreSQL;
SQLite serialises writers anyway) so concurrent requests on two RAS nodes share it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.store.models import RateLimitBucket


@dataclass(frozen=True)
class BucketPolicy:
    capacity: float  #: the burst a user may spend at once
    refill_per_s: float  #: tokens regained per second


async def take(session: AsyncSession, key: str, policy: BucketPolicy, now: float) -> float | None:
    """Take one token. None on success, else the seconds until one is available."""
    moment = datetime.fromtimestamp(now, UTC)
    bucket = (
        await session.execute(
            select(RateLimitBucket).where(RateLimitBucket.key == key).with_for_update()
        )
    ).scalar_one_or_none()
    if bucket is None:
        bucket = RateLimitBucket(key=key, tokens=policy.capacity, updated_at=moment)
        session.add(bucket)
    else:
        elapsed = max(0.0, now - bucket.updated_at.timestamp())
        bucket.tokens = min(policy.capacity, bucket.tokens + elapsed * policy.refill_per_s)
        bucket.updated_at = moment
    if bucket.tokens < 1:
        await session.flush()
        return max(1.0, math.ceil((1 - bucket.tokens) / policy.refill_per_s))
    bucket.tokens -= 1
    await session.flush()
    return None

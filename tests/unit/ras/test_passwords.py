"""argon2id hashing for UDMS (cheap parameters: tests only)."""

from __future__ import annotations

from heslock.ras.passwords import PasswordHasher, generate_password


async def test_hash_verify_and_rehash() -> None:
    hasher = PasswordHasher(time_cost=1, memory_cost=64, parallelism=1)
    password = generate_password()
    hashed = await hasher.hash(password)
    assert hashed.startswith("$argon2id$")
    assert "m=64,t=1,p=1" in hashed
    assert await hasher.verify(hashed, password)
    assert not await hasher.verify(hashed, password + "x")
    assert not await hasher.verify("not a hash", password)
    assert not hasher.needs_rehash(hashed)
    assert PasswordHasher(time_cost=2, memory_cost=64, parallelism=1).needs_rehash(hashed)


def test_generated_passwords_are_long_and_distinct() -> None:
    passwords = {generate_password() for _ in range(50)}
    assert len(passwords) == 50
    assert all(len(p) == 24 for p in passwords)

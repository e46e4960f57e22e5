"""UDMS input rules: NIST SP 800-63B password policy, E.164 phones, e-mail addresses."""

from __future__ import annotations

import pytest

from heslock.ras.services.errors import InvalidInput
from heslock.ras.services.udms import blocklist, passwords
from heslock.ras.services.udms.contacts import mask, normalise_email, normalise_phone
from heslock.ras.services.udms.errors import PasswordRefused
from heslock.ras.store.models import ContactKind

CONTEXT = ["bob.smith@example.org", "+442079460958"]


@pytest.mark.parametrize(
    "password",
    [
        "Correct Horse Battery Staple",
        "plum tart on a windy tuesday",
        "zx9!Qe-0ppL2",  # exactly the minimum length
        "ünïcödé pässwörd ✓",
        "x" * 255 + "y",  # exactly the maximum
    ],
)
def test_acceptable_passwords(password: str) -> None:
    assert passwords.problems(password, CONTEXT) == []
    assert passwords.check(password, CONTEXT) == passwords.normalise(password)


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("elevenchars", "shorter than 12"),
        ("x" * 257, "longer than 256"),
        ("PasswordPassword", "commonly used"),
        ("iloveyou2024", "commonly used"),
        ("1qaz2wsx3edc", "commonly used"),
        ("aaaaaaaaaaaaaaaa", "repetitive or sequential"),
        ("abcdefghijklmnopq", "repetitive or sequential"),
        ("890123456789", "repetitive or sequential"),
        ("98765432109876", "repetitive or sequential"),
        ("xyzxyzxyzxyz", "repetitive or sequential"),
        ("my heslock door!", "name of this service"),
        ("Bob.Smith forever", "e-mail address"),
        ("call me on 9460958!", "phone number"),
    ],
)
def test_refused_passwords(password: str, reason: str) -> None:
    found = passwords.problems(password, CONTEXT)
    assert any(reason in item for item in found), found
    with pytest.raises(PasswordRefused) as caught:
        passwords.check(password, CONTEXT)
    assert caught.value.extensions["reasons"] == found
    assert password not in str(caught.value)


def test_no_composition_rules() -> None:
    # All lower case, no digit, no symbol: NIST forbids demanding more.
    assert passwords.problems("many little lowercase words") == []


def test_nfkc_normalisation() -> None:
    # U+FF21 (fullwidth A) and U+2126 (ohm sign) become A and capital omega under NFKC.
    assert passwords.normalise("\uff21\u2126") == "A\u03a9"
    assert passwords.is_common("\uff30assword1234")  # fullwidth P + "assword1234"


def test_blocklist_is_a_few_thousand_lowercase_entries() -> None:
    entries = [line for line in blocklist.ENTRIES.splitlines() if line]
    assert 2_000 <= len(entries) <= 10_000
    assert len(set(entries)) == len(entries)
    assert all(entry == entry.lower() and entry.strip() == entry for entry in entries)
    long_ones = [e for e in entries if len(e) >= passwords.MIN_LENGTH]
    assert len(long_ones) > 0.8 * len(entries)  # the list targets what the length rule lets in


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 (201) 555-0123", "+12015550123"),
        ("  +49 30 901820  ", "+4930901820"),
    ],
)
def test_phone_numbers_become_e164(given: str, canonical: str) -> None:
    assert normalise_phone(given) == canonical


@pytest.mark.parametrize(
    "given", ["020 7946 0958", "+44 20 7946 095", "+999 123", "+" + "1" * 40, "phone", ""]
)
def test_bad_phone_numbers(given: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_phone(given)


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Bob.Smith@Example.ORG", "bob.smith@example.org"),
        ("  admin@localhost ", "admin@localhost"),
        ("user+tag@bücher.example", "user+tag@xn--bcher-kva.example"),
    ],
)
def test_email_addresses_are_normalised(given: str, canonical: str) -> None:
    assert normalise_email(given) == canonical


@pytest.mark.parametrize(
    "given",
    [
        "plain",
        "@example.org",
        "a@",
        "a b@example.org",
        "a..b@example.org",
        ".a@example.org",
        "a@-bad-.org",
        "a@exa mple.org",
        "x" * 65 + "@example.org",
        "a@" + "b" * 64 + ".org",
    ],
)
def test_bad_email_addresses(given: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_email(given)


def test_masks_hide_the_address() -> None:
    assert mask(ContactKind.PHONE, "+442079460958") == "+44*******958"
    assert mask(ContactKind.EMAIL, "bob.smith@example.org") == "b***@example.org"

"""Errors of UDMS beyond the generic service errors (codes registered in api/problems.py)::

ServiceError
├── InvalidInput
│   └── PasswordRefused   password-refused   (the password policy said no)
└── CodeRefused           code-refused       (one-time code wrong, expired or used up)
"""

from __future__ import annotations

from heslock.ras.services.errors import InvalidInput, ServiceError


class PasswordRefused(InvalidInput):
    """A new password breaks the NIST SP 800-63B rules; ``reasons`` lists which."""

    code = "password-refused"


class CodeRefused(ServiceError):
    """A verification code is wrong, expired, already used or out of attempts.

    One code for all four on purpose: the caller learns only "not accepted".
    """

    code = "code-refused"

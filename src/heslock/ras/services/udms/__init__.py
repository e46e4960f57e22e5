"""UDMS — the user data management service of ISO/IEC 14543-5-104, on the RAS.

Users, their contacts (E.164 phone numbers, e-mail addresses) verified by one-time
codes, argon2id passwords under NIST SP 800-63B rules, a second factor on every login
(SMS or e-mail code, or RFC 6238 TOTP), and sessions made of short-lived access tokens
and rotating refresh-token families (RFC 9700). Guessable things are throttled in the
database, per account and per source address, so the limits hold across RAS nodes.

Modules: :mod:`.service` (the :class:`Udms` object), :mod:`.accounts`, :mod:`.login`,
:mod:`.sessions`, :mod:`.codes`, :mod:`.totp`, :mod:`.senders`, :mod:`.throttle`,
:mod:`.passwords` (policy) with :mod:`.blocklist`, :mod:`.contacts`, :mod:`.keys`.
"""

from heslock.ras.services.udms.service import Udms
from heslock.ras.services.udms.sessions import UdmsAuthenticator

__all__ = ["Udms", "UdmsAuthenticator"]

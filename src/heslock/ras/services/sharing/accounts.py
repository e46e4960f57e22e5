"""What sharing releases when an account is deleted (a UDMS deletion hook).

In the deletion's own transaction, audited under the deleting user:

- every live share granted *to* the user is revoked (``account-deleted``), and the
  invited contact is erased from every share that named the user (it is their
  personal data; the row stays for the owner's history, the audit log for the record);
- every live share *of* the user's locks and homes is revoked (their locks are unbound
  by DDMS in the same transaction anyway);
- the user's homes are deleted (their shares were revoked first).

Pending invitations *to* the deleted user's former addresses stay pending: they name an
address, not an account, and only someone who verifies that address can accept them.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncSession

from heslock.ras.services import audit
from heslock.ras.services.sharing.shares import revoke_all_of
from heslock.ras.store.models import Home, Share

log = logging.getLogger(__name__)

REASON = "account-deleted"


async def release_account(
    session: AsyncSession, user_id: uuid.UUID, ctx: audit.AuditContext, now: datetime
) -> None:
    received = await revoke_all_of(session, ctx, Share.grantee_id == user_id, now, REASON)
    await session.execute(
        update(Share)
        .where(Share.grantee_id == user_id)
        .values(invite_address=None)
        .execution_options(synchronize_session=False)
    )
    granted = await revoke_all_of(session, ctx, Share.owner_id == user_id, now, REASON)
    homes = await session.execute(delete(Home).where(Home.owner_id == user_id).returning(Home.id))
    for home_id in homes.scalars():
        await audit.record(
            session, ctx, "home.delete", audit.AuditResult.OK, target=f"home:{home_id}",
            reason=REASON,
        )  # fmt: skip
    await session.flush()
    log.info("sharing released a deleted account (%d received, %d granted)", received, granted)

"""Grouping and sharing (issue 7): homes, members, shares (electronic keys), invitations.

- :mod:`.policy` and :mod:`.schedule` are the pure core: permissions, roles, validity,
  paths, weekly schedules in IANA zones, and :func:`.policy.decide`.
- :mod:`.resolver` loads a principal's grants on a lock and decides
  (:func:`.resolver.effective_access`); the command paths call it.
- :mod:`.homes`, :mod:`.shares`, :mod:`.invitations` are the services behind the API.

This package's ``__init__`` imports nothing: the store validates schedule JSON with
:mod:`.schedule`, and importing the services here would make that a cycle.
"""

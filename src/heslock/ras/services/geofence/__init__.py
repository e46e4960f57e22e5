"""Geofencing (issue 7): a fence per lock or home, location reports, arrival suggestions.

- :mod:`.policy` is the pure core: distance, fences, reports and every decision
  (inside / outside / stale / inaccurate, remote unlock, arrival, suppression).
- :mod:`.service` loads and stores (fences, reports, suggestions), checks rights with the
  sharing resolver, audits, and offers :func:`.service.check_remote_unlock` to the
  command path.

A location never unlocks a door by itself (docs/security.md, "Geofencing and location
data"). This ``__init__`` imports nothing, as :mod:`heslock.ras.services.sharing`'s.
"""

"""Servers under test for the XMPP benchmarks: the RAS, Prosody and ejabberd (issue 9)."""

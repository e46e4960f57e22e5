"""The lean XMPP load generator and account provisioning of the XMPP benchmarks (issue 9)."""

"""SCS — security authentication support: SASL credentials for gateways (BGW)."""

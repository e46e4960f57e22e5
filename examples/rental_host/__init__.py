"""A rental host's property tool: a third-party app on heslock's OAuth 2.0 and webhooks.

See README.md. Run it with ``python examples/rental_host --help`` (or
``python -m examples.rental_host`` from the repository's root).
"""

"""Approval notifications: signed webhook events from the job outbox (DESIGN §6, §12).

- :mod:`.events`: the event types and the event body;
- :mod:`.signing`: the signature headers (HMAC-SHA256 over ``timestamp + "." + body``);
- :mod:`.service`: :class:`~.service.Webhooks`: deliveries written in the approval's own
  transaction, the delivery job (its own egress policy, retries honouring ``429`` and
  ``Retry-After``, dead after N attempts), listing and redelivery.

Importing this package imports only :mod:`.events` (settings use it); the rest loads on use.
"""

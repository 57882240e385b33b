"""Nostr building blocks the gateway speaks as a client.

- :mod:`boltgate.nostr.nip44` — NIP-44 v2 encrypted payloads;
- :mod:`boltgate.nostr.relay` — a NIP-01 relay client: several relays at once, verified events;
- :mod:`boltgate.nostr.nip47` — Nostr Wallet Connect (NIP-47), the client side.

Event ids and BIP-340 signatures are :mod:`boltgate.agent.nostr`'s (one implementation for the
whole gateway).
"""

"""The Python SDK: ``AtelierClient`` talks to an Atelier server over HTTP."""

from atelier.client.sync import AtelierClient, AtelierError

__all__ = ["AtelierClient", "AtelierError"]

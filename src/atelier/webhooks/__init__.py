"""Webhooks: subscriptions, the delivery ledger (also the queue), and signed delivery."""

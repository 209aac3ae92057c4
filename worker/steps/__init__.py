"""The order steps: business logic given a KeapClient and a Ledger, no Celery."""

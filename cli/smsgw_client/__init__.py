"""smsgw_client: a small Python client for the SMS gateway's API, for integrators.

Client (typed calls, SigV4 or x-api-key, retries with idempotency keys, pagination), ApiError, and the
verifiers for what the gateway sends you: verify_callback (status callbacks) and verify_sns_message (SNS
HTTPS deliveries of the event topic).
"""

from smsgw_client.client import Answer, ApiError, Client
from smsgw_client.verify import verify_callback, verify_sns_message

__all__ = ["Answer", "ApiError", "Client", "verify_callback", "verify_sns_message"]

"""POST /webhooks/{token}/mo: MO messages from devices, forwarded by Eseye."""

from smsgw import http
from smsgw.logic import webhooks

app = http.resolver()


@app.post("/webhooks/<token>/mo")
def receive_mo(token: str):
    webhooks.receive_mo(token, http.webhook_request(app, "mo"))
    return http.text_response(200, "OK")


lambda_handler = http.handler(app)

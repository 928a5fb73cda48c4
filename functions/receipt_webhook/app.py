"""GET|POST /webhooks/{token}/receipt: Eseye's delivery receipts."""

from smsgw import http
from smsgw.logic import webhooks

app = http.resolver()


@app.route("/webhooks/<token>/receipt", method=["GET", "POST"])
def receive_receipt(token: str):
    webhooks.receive_receipt(token, http.webhook_request(app, "receipt"))
    return http.text_response(200, "OK")


lambda_handler = http.handler(app)

"""POST /messages: send an SMS to a SIM."""

from smsgw import http
from smsgw.logic import send

app = http.resolver()


@app.post("/messages")
def post_message():
    outcome = send.submit(
        http.json_body(app),
        http.api_base_url(app),
        dry_run=http.query_flag(app, "dry_run"),
        idempotency_key=http.header(app, "Idempotency-Key"),
        caller=http.caller_identity(app),
        lambda_context=app.lambda_context,
    )
    return http.send_response(outcome)


lambda_handler = http.handler(app)

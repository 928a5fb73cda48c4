"""GET /messages?msisdn=...: one SIM's messages, newest first."""

from smsgw import http
from smsgw.logic import history

app = http.resolver()


@app.get("/messages")
def list_messages():
    return http.json_response(200, history.list_messages(dict(app.current_event.query_string_parameters or {})))


lambda_handler = http.handler(app)

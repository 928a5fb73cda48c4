"""GET /messages/{id}: a message with its status history; ?refresh=true asks Eseye first."""

from smsgw import http
from smsgw.logic import messages

app = http.resolver()


@app.get("/messages/<message_id>")
def get_message(message_id: str):
    return http.json_response(200, messages.get_message(message_id, refresh=http.query_flag(app, "refresh")))


lambda_handler = http.handler(app)

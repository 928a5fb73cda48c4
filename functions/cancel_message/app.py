"""DELETE /messages/{id}: cancel a message that has not been delivered."""

from smsgw import http
from smsgw.logic import messages

app = http.resolver()


@app.delete("/messages/<message_id>")
def cancel_message(message_id: str):
    return http.json_response(200, messages.cancel_message(message_id))


lambda_handler = http.handler(app)

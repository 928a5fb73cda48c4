"""POST /events/replay: republish stored events in a time range."""

from smsgw import http
from smsgw.logic import replay

app = http.resolver()


@app.post("/events/replay")
def replay_events():
    return http.json_response(200, replay.replay_events(http.json_body(app)))


lambda_handler = http.handler(app)

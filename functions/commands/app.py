"""PUT|GET|DELETE /commands/{name} and GET /commands: saved commands, checked when saved to fit one SMS."""

from smsgw import http
from smsgw.logic import commands

app = http.resolver()


@app.put("/commands/<name>")
def put_command(name: str):
    created, command = commands.put_command(name, http.json_body(app), http.caller_identity(app))
    return http.json_response(201 if created else 200, command)


@app.get("/commands")
def list_commands():
    return http.json_response(200, commands.list_commands(dict(app.current_event.query_string_parameters or {})))


@app.get("/commands/<name>")
def get_command(name: str):
    return http.json_response(200, commands.get_command(name))


@app.delete("/commands/<name>")
def delete_command(name: str):
    commands.delete_command(name, http.caller_identity(app))
    return http.json_response(200, {"deleted": True, "name": name})


lambda_handler = http.handler(app)

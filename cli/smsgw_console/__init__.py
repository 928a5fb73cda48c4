"""The gateway's operator console: `smsgw console` serves it on 127.0.0.1 (see server.py)."""

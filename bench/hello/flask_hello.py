"""The Flask-mode baseline of scripts/bench: functions-framework's own hello-world."""


def hello(request: object) -> str:
    return "ok"

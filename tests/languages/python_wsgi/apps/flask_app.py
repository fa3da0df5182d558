"""The Flask application of tests/languages/python_wsgi.rs, wrapped in wsgiref.validate.

Routes: /, /hello/<name> (routing; anything else is Flask's 404), /form (a form POST),
/upload (a multipart file upload: its size and SHA-256), /stream (a generator that waits for a
gate file after its first chunk), /boom (a view that raises: Flask's 500, its traceback on
wsgi.errors).
"""

import hashlib
import os
import time

from flask import Flask, Response, request
from wsgiref.validate import validator

flask_app = Flask(__name__)

#: How long /stream waits for its gate file (a bound on a hang, never a verdict).
GATE_WAIT = 30.0


@flask_app.route("/")
def index():
    return "index page\n"


@flask_app.route("/hello/<name>")
def hello(name):
    return "hello %s\n" % name


@flask_app.route("/form", methods=["POST"])
def form():
    lines = ["%s=%s" % (k, request.form[k]) for k in sorted(request.form)]
    return "\n".join(lines) + "\n"


@flask_app.route("/upload", methods=["POST"])
def upload():
    f = request.files["file"]
    h = hashlib.sha256()
    size = 0
    while True:
        block = f.stream.read(1 << 16)
        if not block:
            break
        h.update(block)
        size += len(block)
    return "name=%s\nsize=%d\nsha256=%s\n" % (f.filename, size, h.hexdigest())


def _wait_for(path):
    deadline = time.monotonic() + GATE_WAIT
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@flask_app.route("/stream")
def stream():
    n = int(request.args.get("n", "5"))
    gate = request.args.get("gate")

    def generate():
        for i in range(n):
            yield "chunk %d\n" % i
            if i == 0 and gate:
                # The rest only once the test has seen chunk 0 arrive over HTTP.
                if not _wait_for(gate):
                    yield "gate never opened\n"
                    return
        yield "end\n"

    return Response(generate(), mimetype="text/plain")


@flask_app.route("/boom")
def boom():
    raise RuntimeError("boom from a Flask view")


application = validator(flask_app)

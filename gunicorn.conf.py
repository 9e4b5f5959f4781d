"""gunicorn settings for Yishi: which process runs the scheduled sweeps.

    .venv/bin/gunicorn -c gunicorn.conf.py --workers 2 [--preload] [--max-requests 1000] \\
        'app:create_app()'

(gunicorn also reads this file by itself when started in this folder.) The app never starts
its scheduler where it is created: with `--preload` that is the master, which then forks
the workers, and a fork must not copy a scheduler's thread, its open transaction or its
locks into every worker. Each worker starts its own scheduler once it has the app, whether
it created the app or inherited it, and stops it when it exits (also when `--max-requests`
recycles it), after the running sweep finishes; then its database connections are closed.
The master runs no sweeps and holds no connection a worker uses: the workers drop what
they inherit (web.database.forget_connections_after_fork)."""

import os

# Read by create_app (through web.scheduler.is_serving_process), in the master and in every
# worker. YISHI_SCHEDULER=off still turns the sweeps off.
if os.environ.get("YISHI_SCHEDULER") != "off":
    os.environ["YISHI_SCHEDULER"] = "workers"


def post_worker_init(worker):
    from web.scheduler import start_scheduler

    start_scheduler(_flask_app(worker))


def worker_exit(server, worker):
    if worker.pid != os.getpid() or getattr(worker, "wsgi", None) is None:
        return  # the master reaping a worker, or a worker that never loaded the app
    from web.extensions import db
    from web.scheduler import stop_scheduler

    app = _flask_app(worker)
    stop_scheduler(app)  # waits for a running sweep
    with app.app_context():
        db.engine.dispose()


def _flask_app(worker):
    from flask import Flask

    if not isinstance(worker.wsgi, Flask):
        raise TypeError(f"gunicorn.conf.py serves Yishi's Flask app, not {worker.wsgi!r}")
    return worker.wsgi

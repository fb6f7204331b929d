"""A clipper worker from a checkout: `python worker.py [--queues cpu]` (installed: `clipper-worker`).
See clipper_app/workers/main.py."""

from clipper_app.workers.main import main

if __name__ == "__main__":
    main()

"""A clipper worker from a checkout: `python worker.py [--queues cpu]` (installed: `clipper-worker`).
See workers/main.py."""

from workers.main import main

if __name__ == "__main__":
    main()

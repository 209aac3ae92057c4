"""`python -m tests.pipeline.logged_worker <celery args>`: a Celery worker whose every log line (DEBUG and up, every
logger) goes to stderr, so a test can search all of it."""
import logging
import sys

from celery.__main__ import main

if __name__ == "__main__":
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    sys.argv = ["celery", *sys.argv[1:]]
    main()

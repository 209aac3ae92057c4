"""The sandbox's HTTP server: a thread per connection, and quiet about callers that hang up."""
from __future__ import annotations

import logging
import sys
from http.server import ThreadingHTTPServer

logger = logging.getLogger("sandbox")


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        """A caller that hung up (a killed worker, a client timeout) is Keap's everyday weather: one debug line,
        not a traceback on stderr; anything else is still printed."""
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            logger.debug("caller %s hung up", client_address[0])
            return
        super().handle_error(request, client_address)

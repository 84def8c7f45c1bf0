"""Serve the built book on localhost: `make serve`.

    python scripts/serve.py [--port 8000] [--bind 127.0.0.1] [--dir _build/html]

The book is a static site; this is Python's http.server pointed at the
build folder. `--port 0` picks a free port.
"""

import argparse
import functools
import http.server
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000,
                        help="port to listen on (0: any free port)")
    parser.add_argument("--bind", default="127.0.0.1",
                        help="address to listen on (default: localhost only)")
    parser.add_argument("--dir", type=Path, default=ROOT / "_build" / "html",
                        help="the built site (default: _build/html)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be in 0..65535, got {args.port}")

    site = args.dir.resolve()
    if not (site / "index.html").is_file():
        print(f"serve: no built book at {site} (index.html missing); "
              "run `make book` first", file=sys.stderr)
        return 1

    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(site))
    with http.server.ThreadingHTTPServer((args.bind, args.port), handler) as server:
        host, port = server.server_address[:2]
        print(f"Serving {site}\nOpen http://{host}:{port}/ in your browser "
              "(Ctrl+C to stop).", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            print("\nserve: stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Serves the built page (target/web-dist) for `web/run.sh`.

Where a file has a gzipped sibling (`NAME.gz`, written by the build) and the browser accepts
gzip, the sibling is sent with `Content-Encoding: gzip`: the 32 MB wasm module travels as about
5 MB. Every response carries `Cache-Control: no-cache`, so that a rebuilt page is fetched again
(revalidated, not downloaded again when unchanged).

    python3 web/serve.py DIRECTORY [--port 8080]
"""

import argparse
import functools
import http.server
import os


class Handler(http.server.SimpleHTTPRequestHandler):
    def end_headers(self):
        self.send_header("Cache-Control", "no-cache")
        super().end_headers()

    def send_head(self):
        path = self.translate_path(self.path)
        packed = path + ".gz"
        accepts = "gzip" in self.headers.get("Accept-Encoding", "")
        if not (accepts and os.path.isfile(path) and os.path.isfile(packed)):
            return super().send_head()
        f = open(packed, "rb")
        try:
            size = os.fstat(f.fileno()).st_size
            self.send_response(200)
            self.send_header("Content-Type", self.guess_type(path))
            self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(size))
            self.send_header("Vary", "Accept-Encoding")
            self.end_headers()
            return f
        except BaseException:
            f.close()
            raise


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("directory")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--bind", default="127.0.0.1")
    a = ap.parse_args()
    handler = functools.partial(Handler, directory=a.directory)
    server = http.server.ThreadingHTTPServer((a.bind, a.port), handler)
    print(f"serving {a.directory} on http://{a.bind}:{a.port}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()

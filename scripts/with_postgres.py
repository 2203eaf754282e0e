"""Run a command beside a throwaway PostgreSQL + pgvector server (the ``pgserver`` wheel).

``python scripts/with_postgres.py qa bench --recall --database {url}``: ``{url}`` in the arguments
becomes the server's URL, which ``QA_DATABASE_URL`` also holds; the server and its data go when the
command ends. ``scripts/figures.sh`` measures recall through PostgreSQL this way.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile


def main(argv: list[str] | None = None) -> int:
    """Start the server, run the command, stop the server; return the command's exit status."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    import pgserver

    with tempfile.TemporaryDirectory(prefix="qa-pg-") as tmp:
        server = pgserver.get_server(tmp, cleanup_mode="stop")
        try:
            url = server.get_uri()
            command = [a.replace("{url}", url) for a in args]
            return subprocess.run(command, env={**os.environ, "QA_DATABASE_URL": url}).returncode
        finally:
            server.cleanup()


if __name__ == "__main__":
    sys.exit(main())

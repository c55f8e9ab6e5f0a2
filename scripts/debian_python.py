"""The one check every Python tool of the project makes before its first third-party import: the
tools run on Debian's /usr/bin/python3 with its python3-<module> packages (scripts/setup.sh
installs them). Under another python3 first on PATH (a pyenv or venv without them) a tool would
die with an ImportError traceback; require() says it in one line on stderr and exits 2 instead.

Standard library only, so it imports under any python3. The tools are run as files, so each puts
this directory on sys.path and imports it by name.
"""
import importlib
import os
import sys

# The Debian package that brings each module to /usr/bin/python3.
PACKAGES = {"numpy": "python3-numpy", "scipy": "python3-scipy", "matplotlib": "python3-matplotlib",
            "torch": "python3-torch"}


def require(*modules):
    """Imports each module (a broken install counts as missing, as it would at the tool's own
    import); on the first that fails, one line "TOOL: error: ..." on stderr and exit 2."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as error:
            sys.stderr.write(
                "%s: error: %s cannot import %s (%s); run it with /usr/bin/python3 (Debian's %s, "
                "installed by scripts/setup.sh)\n" % (os.path.basename(sys.argv[0]), sys.executable, name,
                                                     str(error).replace("\n", " "), PACKAGES[name]))
            sys.exit(2)

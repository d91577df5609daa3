"""``shopsense serve`` and ``shopsense keys``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from shopsense.cli._app import HomeOpt, app, console, handle_errors

keys_app = typer.Typer(help="Manage API keys (stored hashed in the engine home).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

#: seconds a worker may take to answer uvicorn's liveness ping before it is replaced
WORKER_HEALTHCHECK_S = 30

#: native thread pools sized per worker (the CPU cores divided among the workers)
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def run_server(
    home: Path, host: str = "127.0.0.1", port: int = 8000, *, demo: bool = False,
    require_read_key: bool = False, cors: list[str] | None = None, bench_dir: Path | None = None,
    log_level: str = "info", workers: int = 1, redis_url: str | None = None,
    graceful_timeout: float = 30.0, keep_alive: float = 5.0, warm: bool = True,
) -> None:
    """Serve the API, storefront and dashboard for ``home`` with uvicorn (blocks).

    ``workers > 1`` starts that many processes on one socket; each builds its app from
    the settings this process resolved (``SHOPSENSE_SERVE_APP``) and loads the engine
    itself. They share rate limits, cache invalidation and each other's writes through
    Redis (``redis_url``) or ``<home>/serve_state.sqlite3``; each gets ``cores // workers``
    native (BLAS/OpenMP) threads unless ``OMP_NUM_THREADS`` etc. say otherwise. On
    SIGINT/SIGTERM a worker stops accepting, lets in-flight requests finish
    (``graceful_timeout`` seconds at most), commits and answers the events its writer still
    holds, and closes the engine.
    """
    import inspect
    import os

    from shopsense.config import Settings
    from shopsense.errors import check_param, require

    uvicorn = require("uvicorn", "api")
    from shopsense.serve.main import APP_ENV, DEMO_KEY_NAME, app_env, create_app

    check_param("workers", workers, workers >= 1, "an int >= 1", "serve")
    overrides: dict[str, object] = {"cors_origins": cors} if cors else {}
    if redis_url:
        overrides["redis_url"] = redis_url
    settings = Settings.load(home, **overrides)
    if settings.redis_url:  # fail here, with the pip hint, rather than in every worker
        require("redis", "redis")
    # uvicorn's own access log prints raw paths, which carry user ids: ours pseudonymises
    options: dict[str, Any] = {"host": host, "port": port, "access_log": False, "log_level": log_level,
                               "timeout_graceful_shutdown": graceful_timeout,
                               "timeout_keep_alive": keep_alive,
                               # asyncio's loop even where uvloop is installed: with uvloop a served
                               # recommendation (Beauty, 1 worker, 32 clients) had p99 360 ms against
                               # 70 for the same throughput (+1%), its loop serving connections unevenly
                               "loop": "asyncio"}
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
        # uvicorn kills a worker that does not answer its parent's ping within this time; its
        # 5 s default killed workers whose model loading held the GIL on a busy machine
        options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_S
    from shopsense.text import SPIN_ENV

    # requests encode their queries concurrently: ONNX Runtime's threads must not spin-wait
    os.environ.setdefault(SPIN_ENV, "0")
    if warm:  # one worker too: the serving process never holds PyTorch for the catalogue's texts
        fill_embedding_cache(settings)
    if workers == 1:
        application = create_app(settings, demo=demo, require_read_key=require_read_key,
                                 bench_dir=bench_dir, warm=warm)
        uvicorn.run(application, **options)
        return
    # Each worker's native thread pools (OpenMP in torch, OpenBLAS, MKL) default to every core:
    # N workers would run N x cores threads that spin-wait against each other. The workers
    # start fresh interpreters, so the environment reaches them before numpy or torch loads.
    per_worker = str(max(1, (os.cpu_count() or 1) // workers))
    for var in THREAD_VARS:
        os.environ.setdefault(var, per_worker)
    demo_key = None
    if demo:  # one key for all workers: each creating its own would revoke the others'
        from shopsense.serve import KeyStore

        keys = KeyStore(settings.api_keys_file or Path(settings.home) / "api_keys.json")
        keys.revoke_named(DEMO_KEY_NAME)
        demo_key = keys.create("write", name=DEMO_KEY_NAME)
    os.environ[APP_ENV] = app_env(settings, demo=demo, demo_key=demo_key, warm=warm,
                                  require_read_key=require_read_key, bench_dir=bench_dir)
    # what uvicorn.run does for workers > 1, but with one listening socket per worker
    config = uvicorn.Config("shopsense.serve.main:app_from_env", factory=True, workers=workers, **options)
    sockets = worker_sockets(config.host, config.port, workers) if _supervisor_fits() else None
    if sockets is None:  # one socket, shared as uvicorn shares it
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[tcp_socket(config.bind_socket())]).run()
    else:
        console.print(f"listening on http://{config.host}:{sockets[0].getsockname()[1]} "
                      f"({workers} workers, a socket each)")
        balanced_workers(config, sockets, preload=settings if warm else None,
                         balance=settings.balance_connections).run()


def fill_embedding_cache(settings: Any) -> None:
    """Encode the catalogue's texts once, in a child process, before the worker(s) start,
    and fit (and save) the complement model there too.

    Each worker's warm-up reads the item vectors (bundles, content recommendations); with no
    cache on disk every worker encoded the whole catalogue itself at once, and kept PyTorch
    and the model in its private memory afterwards (Beauty, 2 workers: 625 MB private each
    instead of 260-290 MB, measured from /proc/<pid>/smaps_rollup). A child, so this process,
    which only supervises the workers, never holds the model either. Best effort: a failure
    (no encoder installed, empty catalogue) leaves the workers to do as before."""
    import multiprocessing

    proc = multiprocessing.get_context("spawn").Process(target=_item_vectors, args=(settings,),
                                                        name="shopsense-embed")
    proc.start()
    proc.join()


def _item_vectors(settings: Any) -> None:
    from shopsense.engine import Engine

    try:
        with Engine(settings=settings) as eng:
            eng.item_vectors()
            cat = eng.catalog()
            if len(cat):
                try:  # the complement model too: saved in the home, so the workers map it instead
                    # of each fitting its own (Home Depot: 28 s and 127 MB per worker)
                    eng.complements(cat.ids[0], k=1)
                except Exception as exc:  # noqa: BLE001 - no baskets yet: the workers say so at warm-up
                    console.print(f"complement model not prepared before the workers: {exc}")
    except Exception as exc:  # noqa: BLE001 - best effort, see fill_embedding_cache
        console.print(f"[yellow]item vectors not prepared before the workers: {exc}[/yellow]")


def worker_sockets(host: str, port: int, n: int) -> list[Any] | None:
    """``n`` listening TCP sockets on one address (SO_REUSEPORT, TCP_NODELAY), one per worker.

    With one shared socket, whichever worker woke first accepted a whole burst of
    connections: wrk's 32 keep-alive connections, or a proxy's pool, all went to one worker
    and the others idled. The kernel spreads new connections evenly over sockets that
    share a port. None where SO_REUSEPORT does not exist."""
    import socket

    if not hasattr(socket, "SO_REUSEPORT"):
        return None
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    out: list[Any] = []
    try:
        for _ in range(n):
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.bind((host, port or (out[0].getsockname()[1] if out else 0)))
            sock.set_inheritable(True)
            out.append(sock)
    except OSError:
        for sock in out:
            sock.close()
        raise
    return out


def _supervisor_fits() -> bool:
    """Whether uvicorn's supervisor has the shape :func:`balanced_workers` extends
    (``Multiprocess(config, sockets)`` with these three methods)."""
    import inspect

    from uvicorn.supervisors import multiprocess

    params = inspect.signature(multiprocess.Multiprocess.__init__).parameters
    return "target" not in params and all(hasattr(multiprocess.Multiprocess, m) for m in
                                          ("init_processes", "keep_subprocess_alive", "restart_all"))


def balanced_workers(config: Any, sockets: list[Any], preload: Any = None, balance: bool = True) -> Any:
    """uvicorn's worker supervisor (signals, health checks, restarts), each worker serving
    its own socket of :func:`worker_sockets`; a worker that dies is replaced on the same
    socket, so no socket is left without a worker to accept what the kernel queues on it.
    With ``balance`` (and fork), the workers even out their keep-alive connections
    (:mod:`shopsense.serve._balance`) through one int per worker in shared memory."""
    import os

    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors.multiprocess import Multiprocess, Process

    fork = _preload_for_fork(max(1, (os.cpu_count() or 1) // len(sockets)), preload)
    slots = fork.RawArray("i", len(sockets)) if fork is not None and balance else None

    class BalancedWorkers(Multiprocess):  # type: ignore[misc]
        def _start(self, idx: int) -> Any:
            process = Process(self.config, [sockets[idx]])
            if fork is not None:  # the same start as uvicorn's, forked instead of spawned
                from functools import partial

                from uvicorn._subprocess import subprocess_started

                target = process.target if slots is None else partial(_balanced_worker, process, slots, idx)
                process.process = fork.Process(target=subprocess_started, kwargs={
                    "config": self.config, "target": target, "sockets": [sockets[idx]],
                    "stdin_fileno": None})
            process.start()
            return process

        def init_processes(self) -> None:
            self.processes = [self._start(i) for i in range(self.processes_num)]

        def keep_subprocess_alive(self) -> None:
            if self.should_exit.is_set():
                return
            for idx, process in enumerate(self.processes):
                if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                    continue
                process.kill()
                process.join()
                if process.exitcode == STARTUP_FAILURE:  # broken app or socket: as uvicorn, stop
                    self.should_exit.set()
                    return
                if self.should_exit.is_set():
                    return
                self.processes[idx] = self._start(idx)

        def restart_all(self) -> None:
            for idx, old in enumerate(self.processes):
                if self.should_exit.is_set():
                    return
                new = self._start(idx)
                if not new.wait_until_ready(self.config.timeout_worker_healthcheck, self.should_exit):
                    new.kill()
                    new.join()
                    return
                old.terminate()
                old.join()
                self.processes[idx] = new

    return BalancedWorkers(config, sockets=sockets)


def _balanced_worker(process: Any, slots: Any, idx: int, sockets: list[Any] | None = None) -> None:
    """A forked worker's target: uvicorn's, with this worker's connection count (its
    server's open HTTP connections) published in ``slots[idx]`` for the others."""
    from shopsense.serve import balance_connections

    balance_connections(slots, idx, lambda: len(process.server.server_state.connections))
    process.target(sockets)


#: what every worker imports before it serves: imported once by the supervisor, then the
#: workers are forked from it and share those pages (the modules' code objects, classes and
#: tables: ~90 MB of private heap in each spawned worker) until they write to them
PRELOAD = ("numpy", "scipy.sparse", "fastapi", "pydantic", "shopsense.engine", "shopsense.serve.main",
           "shopsense.search", "shopsense.recommend", "shopsense.bundles", "shopsense.text", "shopsense.assist",
           "onnxruntime", "hnswlib", "bm25s")


def _preload_for_fork(threads: int, settings: Any = None) -> Any:
    """The fork start method, after importing :data:`PRELOAD` here, loading the engine (with
    ``settings``: :func:`shopsense.serve.main.preload_engine`) and freezing the heap
    (``gc.freeze``: a collection in a worker then never writes to the shared objects' headers,
    which would copy their pages); ``None`` where fork is not available (spawn, as uvicorn).
    Nothing with a connection, an encoder model or a thread is made before the fork (SQLite
    connections and native thread pools do not survive one): each worker opens its own store
    and loads its own query encoder. ``threads``: the size of the native thread pools (BLAS,
    OpenMP) the workers inherit."""
    import gc
    import importlib
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return None
    for name in PRELOAD:
        try:
            importlib.import_module(name)
        except ImportError:  # an extra that is not installed: the worker does without it too
            continue
    try:  # numpy's BLAS was loaded before THREAD_VARS were set: size its pool now, for the workers
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads)
    except ImportError:
        pass
    if settings is not None:  # the engine too: catalogue, indexes and models shared by the workers
        from shopsense.serve.main import preload_engine, preloaded_answers

        try:
            preload_engine(settings)
            done = preloaded_answers()
            if done is not None:
                console.print(f"recommendations of {done[0]:,} users rendered ahead in {done[1]:.1f} s")
        except Exception as exc:  # noqa: BLE001 - each worker loads its own, as without it
            console.print(f"[yellow]engine not preloaded for the workers: {exc}[/yellow]")
    gc.collect()
    gc.freeze()
    return multiprocessing.get_context("fork")


def tcp_socket(sock: Any) -> Any:
    """``sock`` with TCP_NODELAY for every connection it accepts.

    uvicorn binds the socket of its workers as ``socket.socket(family)``, protocol 0, and
    asyncio sets TCP_NODELAY on an accepted connection only when the socket's protocol is
    TCP. Without it Nagle's algorithm held the second piece of each keep-alive response
    (uvicorn writes the headers and the body separately) until the client's delayed ACK:
    ~40 ms added to every answer of a multi-worker server, which a single worker (bound by
    asyncio itself) never paid. Re-wrapping the descriptor reads the real protocol back.
    """
    import socket

    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        return sock
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # Linux: inherited by accepted sockets
    tcp = socket.socket(fileno=sock.detach())
    tcp.set_inheritable(True)
    return tcp


@app.command()
@handle_errors
def serve(
    home: Path = HomeOpt,
    host: str = typer.Option("127.0.0.1", help="interface to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(None, "--workers", min=1, show_default="the number of CPU cores",
                                help="worker processes; 1 serves from this process"),
    redis_url: str = typer.Option(None, "--redis-url", help="share rate limits, the response cache "
                                  "and writes between workers through this Redis (default: "
                                  "Settings.redis_url, else a SQLite file in the home)"),
    graceful_timeout: float = typer.Option(30.0, "--graceful-timeout", min=0,
                                           help="seconds in-flight requests get to finish at shutdown"),
    keep_alive: float = typer.Option(5.0, "--keep-alive", min=0, help="seconds an idle connection "
                                     "stays open (behind a proxy: more than the proxy's idle timeout)"),
    warm: bool = typer.Option(True, "--warm/--no-warm", help="load the catalogue and models before "
                              "accepting requests (else on first use)"),
    demo: bool = typer.Option(False, "--demo", help="hand the storefront a fresh write key "
                              "(local demos only)"),
    private_reads: bool = typer.Option(False, "--private-reads",
                                       help="require an API key for reads too"),
    cors: list[str] = typer.Option(None, "--cors", help="allowed CORS origin, repeatable"),
    bench_dir: Path = typer.Option(None, help="where the dashboard reads bench results "
                                   "(default ./bench/results)"),
) -> None:
    """Serve the HTTP API, the storefront (/) and the dashboard (/dashboard)."""
    import os

    n = workers or os.cpu_count() or 1
    console.print(f"storefront: http://{host}:{port}/   dashboard: http://{host}:{port}/dashboard"
                  f"   API docs: http://{host}:{port}/docs   workers: {n}")
    run_server(home, host, port, demo=demo, require_read_key=private_reads, cors=cors,
               bench_dir=bench_dir, workers=n, redis_url=redis_url, graceful_timeout=graceful_timeout,
               keep_alive=keep_alive, warm=warm)


def _keystore(home: Path):  # type: ignore[no-untyped-def]
    from shopsense.config import Settings
    from shopsense.serve import KeyStore

    s = Settings.load(home)
    return KeyStore(s.api_keys_file or Path(s.home) / "api_keys.json")


@keys_app.command("create")
@handle_errors
def keys_create(
    role: str = typer.Option(..., "--role", help="read or write (write is admin)"),
    name: str = typer.Option("", "--name", help="a label for the key"),
    home: Path = HomeOpt,
) -> None:
    """Create a key and print it once (only its hash is stored)."""
    key = _keystore(home).create(role, name=name)
    console.print(key, soft_wrap=True, highlight=False)


@keys_app.command("list")
@handle_errors
def keys_list(home: Path = HomeOpt) -> None:
    """List key ids, roles and names (never secrets)."""
    table = Table(title="API keys")
    for col in ("id", "role", "name"):
        table.add_column(col)
    for k in _keystore(home).list():
        table.add_row(k.id, k.role, k.name)
    console.print(table)


@keys_app.command("revoke")
@handle_errors
def keys_revoke(key_id: str = typer.Argument(..., help="the key id (the part after 'ss_')"),
                home: Path = HomeOpt) -> None:
    """Revoke a key by id."""
    if not _keystore(home).revoke(key_id):
        console.print(f"no key {key_id!r}")
        raise typer.Exit(1)
    console.print(f"revoked {key_id}")

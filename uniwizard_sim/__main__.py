"""``python -m uniwizard_sim [--host H] [--port P]`` — run the provider simulator."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from uniwizard_sim.app import start_simulator, stop_simulator


async def serve(host: str, port: int) -> None:
    runner, url = await start_simulator(host, port)
    print(f"uniwizard-sim listening on {url}", flush=True)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, done.set)
    try:
        await done.wait()
    finally:
        await stop_simulator(runner)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="uniwizard-sim", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port))
    except OSError as exc:
        print(f"uniwizard-sim: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

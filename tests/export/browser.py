"""A folder served on 127.0.0.1 and a headless Chromium driven over the DevTools protocol, for the
explorer page's tests (the websocket is websocket-client's)."""
import base64
import contextlib
import functools
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

#: the flags that keep a headless Chromium to itself: no sandbox (tests run as root), no GPU, no network of its own
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--mute-audio", "--window-size=1280,900")


def chromium() -> str:
    """The path of a Chromium, or None."""
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def serve(folder: Path):
    """``folder`` served over HTTP on 127.0.0.1 at a free port, from a thread: its URL."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class Browser:
    """A headless Chromium with one page, driven over the DevTools protocol."""

    def __init__(self, executable: str, profile: Path, timeout: float = 30.0):
        import websocket

        self.timeout, self.next_id, self.console = timeout, 0, []
        self.process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                         "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL)
        try:
            port = self._port(profile / "DevToolsActivePort")
            pages = [t for t in self._targets(port) if t.get("type") == "page"]
            self.socket = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=timeout,
                                                      suppress_origin=True)
            self.call("Runtime.enable")
            self.call("Page.enable")
        except BaseException:
            self.close()
            raise

    def _port(self, path: Path) -> int:
        end = time.monotonic() + self.timeout
        while time.monotonic() < end:
            if self.process.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self.process.returncode} at start")
            if path.is_file() and path.read_text().strip():
                return int(path.read_text().split()[0])
            time.sleep(0.05)
        raise TimeoutError("chromium did not open its DevTools port")

    def _targets(self, port: int) -> list:
        end = time.monotonic() + self.timeout
        while True:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=self.timeout) as answer:
                targets = json.loads(answer.read())
            if any(t.get("type") == "page" for t in targets) or time.monotonic() > end:
                return targets
            time.sleep(0.05)

    def call(self, method: str, **params) -> dict:
        """Send one command and return its result; the events that come meanwhile are kept in ``console``
        where they are console messages or exceptions."""
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            if message.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown"):
                self.console.append(message["params"])

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (a promise is awaited), by value."""
        result = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                           timeout=int(self.timeout * 1000))
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            raise RuntimeError(f"{expression[:80]}: {details.get('exception', {}).get('description', details)}; "
                               f"console: {self.console}")
        return result["result"].get("value")

    def open(self, url: str, ready: str) -> None:
        """Go to ``url`` and wait until the expression ``ready`` is true."""
        self.call("Page.navigate", url=url)
        end = time.monotonic() + self.timeout
        while not self.evaluate(ready):
            if time.monotonic() > end:
                raise TimeoutError(f"{url}: {ready} is still false; console: {self.console}")
            time.sleep(0.05)

    def screenshot(self) -> bytes:
        """The page as PNG bytes."""
        return base64.b64decode(self.call("Page.captureScreenshot", format="png")["data"])

    def close(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None:
            with contextlib.suppress(Exception):
                socket.send(json.dumps({"id": 0, "method": "Browser.close"}))
            socket.close()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

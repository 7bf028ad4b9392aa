"""Headless Debian chromium driven by Selenium (chromium-driver, no browser download), for the browser tests.

They run only where nothing the browser tries can leave the machine: inside a private network namespace
(`unshare -n sh -c 'ip link set lo up; exec ...'`, as .ci/run does), where loopback is the only interface.
Anywhere else they skip, saying why, so a plain `pytest` never starts a browser on the host network."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
import struct
from dataclasses import dataclass
from typing import Any

CHROMIUM = os.environ.get("MERIDIAN_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MERIDIAN_CHROMEDRIVER", "/usr/bin/chromedriver")
REQUIRE_ENV = "MERIDIAN_REQUIRE_BROWSER"      # set by .ci/run: a missing browser fails instead of skipping

_SIOCGIFFLAGS = 0x8913
_IFF_UP = 0x1


def interfaces_up() -> list[str]:
    """The network interfaces that are up in this process's network namespace, loopback included."""
    up = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _, name in socket.if_nameindex():
            req = struct.pack("16sH14s", name.encode()[:15], 0, b"")
            try:
                flags = struct.unpack("16sH14s", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
            except OSError:
                continue
            if flags & _IFF_UP:
                up.append(name)
    return up


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            return (f"{path} is missing: apt-get install chromium chromium-driver (Debian's; the tests never "
                    "download a browser)")
    others = [n for n in interfaces_up() if n != "lo"]
    if others:
        return (f"interfaces beyond loopback are up ({', '.join(others)}): the browser tests run only in a private "
                "network namespace: unshare -n sh -c 'ip link set lo up; exec .venv/bin/python -m pytest -m browser'")
    if "lo" not in interfaces_up():
        return "loopback is down in this network namespace: run 'ip link set lo up' first"
    return None


def start_chromium(width: int = 1280, height: int = 1400) -> Any:
    """A headless chromium with its console and network (performance) logs recorded."""
    os.environ["SE_OFFLINE"] = "true"          # Selenium Manager must never fetch a driver or a browser
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--disable-extensions", "--disable-features=Translate,MediaRouter,OptimizationHints"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    return webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))


@dataclass
class Traffic:
    """What the page asked for since the last drain: each request's URL, each response's status, failures."""

    requests: list[str]
    responses: list[tuple[str, int]]
    failures: list[str]
    console: list[dict[str, Any]]

    def off_site(self, allowed_prefix: str) -> list[str]:
        """Requests outside `allowed_prefix`; data: URLs and the page's own blob: URLs (ReDoc's search worker)
        never leave the browser."""
        own = (allowed_prefix, "data:", "blob:" + allowed_prefix.rstrip("/") + "/")
        return [u for u in self.requests if not u.startswith(own)]

    def status(self, url: str) -> list[int]:
        """The statuses `url` was answered with, in order."""
        return [s for u, s in self.responses if u == url]

    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.console if e.get("level") == "SEVERE"]


def drain(driver: Any) -> Traffic:
    """Read (and clear) the browser's network and console logs."""
    requests: list[str] = []
    responses: list[tuple[str, int]] = []
    failures: list[str] = []
    ids: dict[str, str] = {}
    for entry in driver.get_log("performance"):
        msg = json.loads(entry["message"])["message"]
        p = msg.get("params", {})
        if msg["method"] == "Network.requestWillBeSent":
            ids[p["requestId"]] = p["request"]["url"]
            requests.append(p["request"]["url"])
        elif msg["method"] == "Network.responseReceived":
            responses.append((p["response"]["url"], p["response"]["status"]))
        elif msg["method"] == "Network.loadingFailed" and not p.get("canceled"):
            failures.append(f"{ids.get(p['requestId'], '?')}: {p.get('errorText')} {p.get('blockedReason') or ''}")
    return Traffic(requests, responses, failures, driver.get_log("browser"))


def save_screenshot(driver: Any, path: str) -> str:
    """Save the page as PNG at `path` (and into $MERIDIAN_SCREENSHOT_DIR too, when set)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    driver.save_screenshot(path)
    extra = os.environ.get("MERIDIAN_SCREENSHOT_DIR")
    if extra:
        os.makedirs(extra, exist_ok=True)
        shutil.copy(path, os.path.join(extra, os.path.basename(path)))
    return path

"""ctest sweep:report-renders: opens report.html in headless chromium and checks that every
plot decoded (the page's own script records naturalWidth > 0 per image once loaded).
Exits 77 (ctest SKIP_RETURN_CODE) only when chromium is not installed.

Usage: check_report_renders.py REPORT_HTML
"""
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SKIP = 77


def main():
    page = Path(sys.argv[1]).resolve()
    browser = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                    if shutil.which(n)), None)
    if not browser:
        print("SKIPPED: chromium is not installed (apt-get install chromium; install-deps.sh "
              "does)")
        return SKIP
    images = len(re.findall(r'<img class="plot"', page.read_text()))
    if images == 0:
        print(f"FAILED: {page} has no plots")
        return 1
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                               "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                               "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                              capture_output=True, text=True, timeout=120)
    body = re.search(r"<body([^>]*)>", done.stdout)
    total = re.search(r'data-plots-total="(\d+)"', body.group(1)) if body else None
    decoded = re.search(r'data-plots-decoded="(\d+)"', body.group(1)) if body else None
    if done.returncode != 0 or not total or not decoded:
        print(f"FAILED: chromium exited {done.returncode}; no load record in the DOM\n"
              f"{done.stderr[-2000:]}")
        return 1
    print(f"chromium: {decoded.group(1)} of {total.group(1)} plots decoded; the page has {images}")
    if int(total.group(1)) != images or int(decoded.group(1)) != images:
        print("FAILED: not every plot rendered")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

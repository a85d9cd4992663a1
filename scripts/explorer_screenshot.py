"""A screenshot of a latent explorer page in headless Chromium, driven the way tests/test_explorer_browser.py drives
it: the pointer rests on a point of the plane, and two clicks (on the medians of two classes' dots, or on two given
plane points) play the interpolation between them.

    python scripts/explorer_screenshot.py --html reports/vae/latent_explorer.html --out reports/vae/explorer.png \
        --from 9 --to 8            # or: --at=X0,Y0 --at=X1,Y1 (with "=": X may be negative)

Needs chromium, chromedriver and selenium (`apt-get install chromium chromium-driver`, `pip install selenium`).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path


def chromium(width: int, height: int):
    """Headless Chromium with the browser test's flags, or an error saying what to install."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        sys.exit("explorer_screenshot: error: selenium is not installed (pip install selenium)")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        sys.exit("explorer_screenshot: error: Chromium or chromedriver is not installed "
                 "(apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={width},{height}",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)


MEDIAN_PX = """
const c = arguments[0], pts = explorer.data.points.filter(p => p[2] === c);
if (!pts.length) return null;
const med = k => { const v = pts.map(p => p[k]).sort((a, b) => a - b); return v[Math.floor(v.length / 2)]; };
const plane = document.getElementById('plane');
const [x, y] = explorer.toPx(med(0), med(1));
return [x - plane.width / 2, y - plane.height / 2];
"""


POINT_PX = """
const plane = document.getElementById('plane');
const [x, y] = explorer.toPx(arguments[0], arguments[1]);
return [x - plane.width / 2, y - plane.height / 2];
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--html", required=True, help="an explorer page (latent_explorer.html)")
    parser.add_argument("--out", required=True, help="the PNG to write")
    parser.add_argument("--from", dest="cls_from", type=int, default=9, help="first click: this class's median dot")
    parser.add_argument("--to", dest="cls_to", type=int, default=8, help="second click: this class's median dot")
    parser.add_argument("--at", action="append", default=None, metavar="X,Y",
                        help="click this point of the plane instead (twice: the two ends), e.g. the plane points "
                        "`genlab vae-figures` prints for its interpolation; write --at=-0.79,-0.41 when X is negative")
    parser.add_argument("--size", default="960x780", help="window size WxH in CSS pixels")
    args = parser.parse_args(argv)
    page = Path(args.html)
    if not page.is_file():
        parser.error(f"{page} does not exist: write it with `genlab vae-figures --ckpt X --out DIR`")
    width, height = (int(v) for v in args.size.lower().split("x"))
    points = []
    for text in args.at or []:
        try:
            x, y = (float(v) for v in text.strip("() ").split(","))
        except ValueError:
            parser.error(f"--at takes a plane point X,Y (e.g. -0.79,-0.41), got {text!r}")
        points.append((x, y))
    if args.at and len(points) != 2:
        parser.error(f"give --at twice (the two ends of the interpolation), got {len(points)}")
    from selenium.webdriver.common.action_chains import ActionChains

    driver = chromium(width, height)
    try:
        driver.get(page.resolve().as_uri())
        driver.find_element("css selector", "body[data-ready='1']")
        plane = driver.find_element("id", "plane")
        if args.at:
            ends = [driver.execute_script(POINT_PX, *point) for point in points]
        else:
            ends = [driver.execute_script(MEDIAN_PX, c) for c in (args.cls_from, args.cls_to)]
            if None in ends:
                parser.error(f"the page has no dots of class {(args.cls_from, args.cls_to)[ends.index(None)]}")
        for dx, dy in ends:
            ActionChains(driver).move_to_element_with_offset(plane, round(dx), round(dy)).click().perform()
        time.sleep(2.0)  # the interpolation plays for 1.2 s; the pointer then rests on the second point
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
        readout = driver.find_element("id", "readout").text
    finally:
        driver.quit()
    print(f"{out}: {readout}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

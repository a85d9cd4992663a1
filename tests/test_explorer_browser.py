"""The latent explorer in a real browser (headless Chromium driven by Selenium): pointing at the plane shows the
decoder's image for that point, the legend names the classes, two clicks play an interpolation.

Skipped, with the reason, where Chromium, its driver or Selenium is missing; `.ci/run` installs them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from genlab.figures.explorer import atlas_axis, explorer_html

FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("Chromium or chromedriver is not installed (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,800",
                 "--force-device-scale-factor=1"):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(driver_path), options=options)


def toy_decoder() -> nn.Module:
    """A small seeded MLP decoder 2 -> 28x28 with enough contrast that nearby cells differ."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 784))
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(3)
    return net.eval()


@pytest.fixture(scope="module")
def browser():
    driver = _browser()
    yield driver
    driver.quit()


def shown_image(driver) -> torch.Tensor:
    """The big image canvas read back as 28x28 uint8 (the centre pixel of each 10x10 block)."""
    pixels = driver.execute_script(
        "const c = document.getElementById('image');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data);")
    rgba = torch.tensor(pixels, dtype=torch.uint8).view(280, 280, 4)
    return rgba[5::10, 5::10, 0]


def test_pointer_shows_the_decoders_image_and_legend_names_classes(browser, tmp_path):
    decoder = toy_decoder()

    def decode(z):
        return torch.sigmoid(decoder(z)).view(-1, 28, 28)

    gen = torch.Generator().manual_seed(0)
    points, labels = torch.randn(500, 2, generator=gen), torch.randint(0, 10, (500,), generator=gen)
    page = tmp_path / "explorer.html"
    page.write_text(explorer_html(decode, points, labels, FASHION, title="test", n=32), encoding="utf-8")
    browser.get(page.as_uri())
    browser.find_element("css selector", "body[data-ready='1']")  # the atlas image has loaded

    from selenium.webdriver.common.action_chains import ActionChains

    plane = browser.find_element("id", "plane")
    axis = atlas_axis(32)
    seen = []
    for dx, dy in ((-120, 90), (110, -100)):  # offsets from the plane's centre, in CSS pixels
        ActionChains(browser).move_to_element_with_offset(plane, dx, dy).perform()
        col, row = int(browser.execute_script("return explorer.state.col")), int(browser.execute_script("return explorer.state.row"))
        z = torch.tensor([[axis[col].item(), axis[31 - row].item()]])
        expected = (decode(z)[0].clamp(0, 1) * 255).round().to(torch.uint8)
        shown = shown_image(browser)
        assert (shown.int() - expected.int()).abs().max() <= 2, f"cell ({col}, {row}) is not the decoder's image"
        seen.append(shown)
    assert (seen[0].int() - seen[1].int()).abs().max() > 50, "the image must change with the pointer"
    legend = browser.find_element("id", "legend").text
    assert all(name in legend for name in FASHION)

    ActionChains(browser).move_to_element_with_offset(plane, -100, 0).click().perform()
    ActionChains(browser).move_to_element_with_offset(plane, 100, 0).click().perform()
    strip = browser.execute_script(
        "const c = document.getElementById('strip');"
        "return Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data).filter((v, i) => i % 4 == 0);")
    assert len(set(strip)) > 10, "two clicks draw the interpolation strip"


def test_page_is_self_contained_and_small(tmp_path):
    decoder = toy_decoder()
    html = explorer_html(lambda z: torch.sigmoid(decoder(z)).view(-1, 28, 28), torch.randn(3000, 2),
                         torch.randint(0, 10, (3000,)), [str(i) for i in range(10)])
    assert "http://" not in html and "https://" not in html and "<script src" not in html
    assert len(html.encode()) < 4_000_000  # a noise-like toy decoder; real digits compress far better
    assert html.count("],[") < 2000  # at most MAX_POINTS scatter points
    Path(tmp_path / "x.html").write_text(html)

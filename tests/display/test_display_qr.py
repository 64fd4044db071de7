"""The venue QR code's SVG: well-formed, scalable, in the venue's colours."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from services.display.qr import qr_svg

SVG = "{http://www.w3.org/2000/svg}"


def test_the_svg_is_well_formed_scalable_and_coloured() -> None:
    url = "https://give.example.org/donate?venue=event-hall&lang=zh"
    svg = qr_svg(url, "#1b5e20", "#fffdf5")
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg"
    x, y, width, height = (float(n) for n in root.attrib["viewBox"].split())
    assert (x, y) == (0, 0) and width == height >= 21 + 4  # version 1 at least, 2 modules of quiet zone
    # No fixed size: inline or as an <img>, it takes the size it is given.
    assert "width" not in root.attrib and "height" not in root.attrib
    assert root.attrib["role"] == "img" and root.attrib["aria-label"] == f"QR: {url}"
    background, path = list(root)
    assert background.tag.endswith("rect") and background.attrib["fill"] == "#fffdf5"
    assert path.tag.endswith("path") and path.attrib["fill"] == "#1b5e20"
    assert path.attrib["d"].startswith("M") and "id" not in path.attrib


def test_the_defaults_are_black_on_white() -> None:
    root = ET.fromstring(qr_svg("https://give.example.org/donate?venue=x"))
    background, path = list(root)
    assert (background.attrib["fill"], path.attrib["fill"]) == ("#fff", "#000")

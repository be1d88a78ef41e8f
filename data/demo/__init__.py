"""A fake but realistic Chinese district: the demo and benchmark territory.

:func:`generate` builds a district shaped like Guangzhou's Baiyun district
(centred near 113.30 E, 23.25 N), deterministic by seed and scalable from about
10,000 to 1,500,000 households:

* an **urban** part of streets (街道) and communities (社区) on a warped street
  lattice: primary arterials every 1-1.5 km, secondary roads every ~500 m,
  tertiary/residential roads every 150-250 m, service lanes and footways inside
  compounds (小区) of 6-33 floor buildings, urban villages (城中村), parks,
  schools, hospitals, markets, commercial blocks, an industrial park and a
  campus;
* a **rural** part of towns (镇) and villages (村) with scattered hamlets
  (自然村) of 1-3 floor houses, a river with its tributaries and a reservoir,
  ridges over the hills, country roads and a scenic area;
* a railway crossing the district.

Everything is built in the metric CRS EPSG:4547 (CGCS2000 3-degree
Gauss-Kruger, CM 114E) and returned in EPSG:4326.  Every admin polygon nests
exactly in its parent: the communities/villages of a town tile it and the towns
tile the district.

The generator is one class built up stage by stage, each stage a subclass of the one
before (it reads what the earlier stages left): :mod:`~data.demo.base` (random streams,
name banks, outputs), :mod:`~data.demo.urban_lattice` (stages 1-2),
:mod:`~data.demo.natural` (3), :mod:`~data.demo.urban_buildings` (4, block layouts in
:mod:`~data.demo.layouts`), :mod:`~data.demo.rural_admin` (5),
:mod:`~data.demo.rural_fabric` (6-8), :mod:`~data.demo.addresses`, and
:mod:`~data.demo.district` which assembles the layers. :mod:`~data.demo.events` makes
demo events for the command centre.
"""

from data.demo.common import LAYERS
from data.demo.district import DemoTerritory, generate, generate_province
from data.demo.events import demo_events

__all__ = ["LAYERS", "DemoTerritory", "demo_events", "generate", "generate_province"]

"""Street-first synthetic city fabrics with their ground-truth streets, for the lines benchmark.

:func:`generate` builds a small district the way such a city is built, streets first,
deterministic by seed, in the territory layer contract (docs/data-format.md):

* **communities** (社区, level ``village``, 12-digit codes) of about 2,000–8,000
  households on a warped lattice of **arterials** (primary and secondary roads, always
  in the roads layer), grouped into one to three **towns** (街道) of one district;
* inside each community, **street blocks** bounded by **minor streets** (tertiary,
  residential and service, 10–25 m between building lines): full-length streets one way,
  staggered segments the other way (T-junctions, not a lattice), some slanted, now and
  then a curved one; these are the ground-truth streets;
* inside each street block, buildings behind a setback from the street: rows of low or
  mid-rise residential slabs (orientation per block, rows spaced by the sunlight rule,
  1–1.5× the building height; 2 flats per floor per unit, so a 6-storey slab of 3 units
  holds 36 households), tower compounds (point towers of 100–300 households), shops
  along the street (no households), one school per community, blocks laid out at a
  slant now and then;
* optionally a **river** crossing the district (and so some communities).

``withhold`` is the share of the minor streets (by count) left out of the roads layer:
they are returned apart as :attr:`Fabric.withheld`, the streets that are on the ground
but not in the data. ``points=True`` gives the buildings as address points (one per
building, with its households) instead of footprints; the footprints are always kept in
:attr:`Fabric.footprints`. The households of the buildings sum exactly to
``households``.

Everything is built in EPSG:4547 (CGCS2000 3° Gauss–Krüger, central meridian 114°E, the
zone ``gis`` picks for this place) and returned in WGS84.

The generator is one class built stage by stage, each stage a subclass of the one before
(as :mod:`data.demo`): :mod:`~data.fabric.streets` (arterials, communities, towns, the
river, minor streets), :mod:`~data.fabric.buildings` (buildings in the street blocks, the
households fitted) and :mod:`~data.fabric.district` (the layers, :func:`generate`);
:mod:`~data.fabric.common` holds what they share.
"""

from data.fabric.common import DENSITIES, LAYERS
from data.fabric.district import Fabric, generate

__all__ = ["DENSITIES", "LAYERS", "Fabric", "generate"]

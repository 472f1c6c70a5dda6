"""Compute measurement (算力度量): the device catalog and the probe that measures real machines."""

from suanli.hardware.catalog import CARRIERS, Catalog, Device, builtin_catalog, load_catalog

__all__ = ["CARRIERS", "Catalog", "Device", "builtin_catalog", "load_catalog"]

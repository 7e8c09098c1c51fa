"""Readers for packaged reference data (dictionary, SEC, ICD-10-CM, parallel text) used by ``stages.lib.sources``."""

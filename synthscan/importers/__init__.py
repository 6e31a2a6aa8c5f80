"""Importers for public bone-scan layouts."""
